"""``edgefleet keys``: Ed25519 signing key pairs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from edgefleet.signing import generate_keys, key_id, load_private_key

__all__ = ["app", "generate"]

app = typer.Typer(help="Signing keys for model packages.", no_args_is_help=True)
_out = Console()


@app.command()
def generate(
    out: Annotated[Path, typer.Option(help="folder for signing.key (mode 0600) and signing.pub")],
    overwrite: Annotated[bool, typer.Option(help="replace keys already in the folder")] = False,
) -> None:
    """Create an Ed25519 key pair for signing packages."""
    private_path, public_path = generate_keys(out, overwrite=overwrite)
    kid = key_id(load_private_key(private_path).public_key())
    _out.print(f"key id [bold]{kid}[/]\n  private: {private_path} (keep it secret)\n  public:  {public_path}")

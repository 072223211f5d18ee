"""``edgefleet keys``: Ed25519 key pairs, and the root-signed list of signing keys that lets a fleet rotate them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from edgefleet.cli._server import answer, server_client
from edgefleet.errors import InputError
from edgefleet.keylist import KeyList, certify_keys, load_key_list, open_key_list
from edgefleet.signing import generate_keys, key_id, load_private_key, load_public_keys

__all__ = ["app", "certify", "generate", "publish", "show"]

app = typer.Typer(help="Signing keys for model packages, and the root-signed list of them.", no_args_is_help=True)
_out = Console()

ServerOption = Annotated[
    str, typer.Option("--server", envvar="EDGEFLEET_SERVER_URL", help="the fleet server's address")
]
TokenOption = Annotated[
    str | None, typer.Option("--token", envvar="EDGEFLEET_TOKEN", help="an admin's API token", show_default=False)
]


@app.command()
def generate(
    out: Annotated[Path, typer.Option(help="folder for signing.key (mode 0600) and signing.pub")],
    overwrite: Annotated[bool, typer.Option(help="replace keys already in the folder")] = False,
) -> None:
    """Create an Ed25519 key pair: a signing key for packages, or a root key that certifies signing keys."""
    private_path, public_path = generate_keys(out, overwrite=overwrite)
    kid = key_id(load_private_key(private_path).public_key())
    _out.print(f"key id [bold]{kid}[/]\n  private: {private_path} (keep it secret)\n  public:  {public_path}")


@app.command()
def certify(
    root: Annotated[Path, typer.Option(help="the root's private key (keep it offline; used only here)")],
    key: Annotated[list[Path], typer.Option(help="a signing.pub devices may trust (repeat for several)")],
    out: Annotated[Path, typer.Option(help="the key list to write")] = Path("keys.json"),
    version: Annotated[
        int | None, typer.Option(help="the list's version [default: one above the list in --out, else 1]")
    ] = None,
    expires_days: Annotated[int, typer.Option(min=1, help="days until devices stop installing with it")] = 365,
) -> None:
    """Sign the list of signing keys with the root key. A key left out is revoked once devices see the list."""
    root_key = load_private_key(root)
    roots = {key_id(root_key.public_key()): root_key.public_key()}
    if version is None:
        version = open_key_list(load_key_list(out), roots).version + 1 if out.exists() else 1
    expires = datetime.now(UTC) + timedelta(days=expires_days)
    signed = certify_keys(list(load_public_keys(key).values()), root_key, version=version, expires=expires)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(signed.model_dump_json(by_alias=True, indent=2) + "\n")
    _show(open_key_list(signed, roots), out)


@app.command()
def show(
    key_list: Annotated[Path, typer.Argument(help="a keys.json")],
    root: Annotated[list[Path], typer.Option(help="the root public key the list must be signed by")],
) -> None:
    """Check a key list's root signature and show what it certifies. Exit 1 if it does not verify."""
    _show(open_key_list(load_key_list(key_list), load_public_keys(root)), key_list)


@app.command()
def publish(
    key_list: Annotated[Path, typer.Argument(help="a keys.json from `edgefleet keys certify`")],
    server: ServerOption = "http://127.0.0.1:8080",
    token: TokenOption = None,
) -> None:
    """Give the fleet server a newer key list: it sends the list to every device still on an older one."""
    signed = load_key_list(key_list)
    with server_client(server, token) as client:
        response = client.put("/api/v1/keys", json=signed.model_dump(mode="json", by_alias=True))
    body = answer(
        response,
        input_codes=(409, 422),
        hints={
            403: "publishing a key list takes an admin token",
            409: "the server holds this list or a newer one: certify a higher --version",
            422: "the server's root_keys did not sign this list, or it has expired",
        },
    )
    _out.print(f"the server now holds key list version [bold]{body['version']}[/]")


def _show(opened: KeyList, path: Path) -> None:
    if opened.expires <= datetime.now(UTC):
        raise InputError(
            f"{path} (version {opened.version}) expired at {opened.expires.isoformat()}",
            hint="certify a new list with a later --expires-days",
        )
    _out.print(
        f"{path}: key list version [bold]{opened.version}[/], signed by root {opened.root_key_id}, "
        f"expires {opened.expires:%Y-%m-%d %H:%M} UTC",
        highlight=False,
    )
    table = Table("signing keys it certifies")
    for kid in sorted(opened.keys):
        table.add_row(kid)
    _out.print(table)

"""``edgefleet schemas``: write the JSON Schemas of the wire contracts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

__all__ = ["schemas"]


def schemas(
    out: Annotated[Path, typer.Option(help="the folder to write *.schema.json into")] = Path("docs/schemas"),
) -> None:
    """Generate the JSON Schemas of the package manifest, MQTT messages and device profile."""
    from edgefleet.schemas import write_schemas

    for path in write_schemas(out):
        Console().print(f"wrote {path}")

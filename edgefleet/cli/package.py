"""``edgefleet package``: build, verify and inspect signed model packages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from edgefleet.errors import InputError, PackageError
from edgefleet.manifest import Manifest

__all__ = ["app", "build", "inspect", "verify"]

app = typer.Typer(help="Signed model packages (.efpkg).", no_args_is_help=True)
_out = Console()
_err = Console(stderr=True, soft_wrap=True)


@app.command()
def build(
    export_dir: Annotated[Path, typer.Argument(help="a folder written by `edgefleet export`")],
    key: Annotated[Path, typer.Option(help="the signing.key to sign with")],
    version: Annotated[str, typer.Option(help="semantic version of this package, e.g. 1.0.0")],
    out: Annotated[Path, typer.Option(help="the .efpkg file to write")],
    key_list: Annotated[
        Path | None, typer.Option(help="a keys.json from `edgefleet keys certify` to ship in the package")
    ] = None,
) -> None:
    """Sign an export folder into one package file."""
    from export.packaging import package_export

    path = package_export(export_dir, key=key, version=version, out=out, key_list=key_list)
    _out.print(f"wrote [bold]{path}[/] ({path.stat().st_size} bytes)")


@app.command()
def verify(
    package: Annotated[Path, typer.Argument(help="the .efpkg file")],
    trust: Annotated[list[Path] | None, typer.Option(help="a trusted public key (repeat for several)")] = None,
    root: Annotated[
        list[Path] | None,
        typer.Option(help="a root public key: trust the keys of the key list it signed, shipped in the package"),
    ] = None,
    installed_version: Annotated[
        str | None, typer.Option(help="refuse an older version than this one, as a device would")
    ] = None,
) -> None:
    """Check a package completely: archive, signature, manifest and every file's hash. Exit 1 if invalid."""
    from edgefleet.keylist import KeyRing
    from edgefleet.package import verify_package
    from edgefleet.signing import load_public_keys

    if not trust and not root:
        raise InputError("no key to verify with", hint="pass --trust signing.pub, or --root root.pub")
    keys = KeyRing(load_public_keys(trust or []), load_public_keys(root or []))
    try:
        verified = verify_package(package, keys, installed_version=installed_version)
    except PackageError as err:
        _err.print(f"[bold red]INVALID[/] {package}: {err.message}", highlight=False)
        raise typer.Exit(1) from err
    m = verified.manifest
    _out.print(f"[bold green]OK[/] {m.name} {m.version}, signed by key {verified.key_id}, {len(m.artifacts)} artifacts")


@app.command()
def inspect(
    package: Annotated[Path, typer.Argument(help="the .efpkg file")],
    as_json: Annotated[bool, typer.Option("--json", help="print the manifest as JSON")] = False,
) -> None:
    """Show a package's manifest (read safely, but its signature is NOT checked: use verify for that)."""
    from edgefleet.package import inspect_package

    manifest = inspect_package(package)
    if as_json:
        _out.print_json(json.dumps(manifest.model_dump(mode="json", by_alias=True)))
        return
    _out.print(_render(manifest))
    _err.print("[yellow]signature not checked[/]: run `edgefleet package verify` before trusting it")


def _render(manifest: Manifest) -> Table:
    table = Table(title=f"{manifest.name} {manifest.version} ({manifest.task})", show_header=True)
    for column in ("artifact", "format", "precision", "size", "sha256"):
        table.add_column(column)
    for a in manifest.artifacts:
        table.add_row(a.path, a.format, a.precision, f"{a.size_bytes:,} B", a.sha256[:16])
    shapes = ", ".join(f"{t.name} {t.shape} {t.dtype}" for t in manifest.inputs)
    table.caption = f"inputs: {shapes}; labels: {', '.join(manifest.labels) or '-'}"
    return table

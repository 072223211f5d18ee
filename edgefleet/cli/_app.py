"""The root Typer app, its command groups, and the handler that turns errors into exit codes."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from edgefleet.cli.demo import demo
from edgefleet.cli.export import export
from edgefleet.cli.keys import app as keys_app
from edgefleet.cli.package import app as package_app
from edgefleet.cli.schemas import schemas
from edgefleet.cli.server import server
from edgefleet.cli.train import app as train_app
from edgefleet.errors import EdgefleetError

__all__ = ["app", "main"]

app = typer.Typer(
    name="edgefleet",
    help="Take ML models from a server to fleets of small devices and keep them healthy there.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(keys_app, name="keys")
app.add_typer(package_app, name="package")
app.add_typer(train_app, name="train")
app.command()(export)
app.command()(schemas)
app.command()(demo)
app.command()(server)

_err = Console(stderr=True, soft_wrap=True)


def main() -> None:
    """Run the command line; an EdgefleetError becomes its message, hint and exit code (``--debug`` shows the traceback)."""
    debug = "--debug" in sys.argv
    if debug:
        sys.argv.remove("--debug")
    try:
        app()
    except EdgefleetError as err:
        if debug:
            raise
        _err.print(f"[bold red]error:[/] {err.message}", highlight=False)
        if err.hint:
            _err.print(f"[yellow]hint:[/] {err.hint}", highlight=False)
        sys.exit(err.exit_code)

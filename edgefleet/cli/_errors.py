"""The one handler that turns an EdgefleetError into its message, hint and exit code."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.markup import escape

from edgefleet.errors import EdgefleetError

__all__ = ["run_cli"]


def run_cli(app: typer.Typer) -> None:
    """Run ``app``; an EdgefleetError becomes message, hint and exit code (``--debug`` shows the traceback)."""
    debug = "--debug" in sys.argv
    if debug:
        sys.argv.remove("--debug")
    try:
        app()
    except EdgefleetError as err:
        if debug:
            raise
        console = Console(stderr=True, soft_wrap=True)
        # escaped: messages carry paths and extras such as edgefleet[mobile], not markup
        console.print(f"[bold red]error:[/] {escape(err.message)}", highlight=False)
        if err.hint:
            console.print(f"[yellow]hint:[/] {escape(err.hint)}", highlight=False)
        sys.exit(err.exit_code)

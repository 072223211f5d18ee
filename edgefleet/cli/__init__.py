"""The ``edgefleet`` command line: one Typer app, one module per command group."""

from __future__ import annotations

from edgefleet.cli._app import app, main
from edgefleet.cli._errors import run_cli

__all__ = ["app", "main", "run_cli"]

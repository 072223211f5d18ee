"""``edgefleet agent``: the edge agent's commands, the very ones ``edgefleet-agent`` runs."""

from __future__ import annotations

import typer

# edge_agent.cli imports only typer and rich at the top, so mounting it keeps `edgefleet --help` light
from edge_agent.cli import run

__all__ = ["app"]

app = typer.Typer(help="The edge agent (also installed alone as `edgefleet-agent`).", no_args_is_help=True)
app.command()(run)

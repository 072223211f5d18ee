"""The root Typer app, its command groups, and the handler that turns errors into exit codes."""

from __future__ import annotations

import typer

from edge_agent.cli import app as agent_app
from edgefleet.cli._errors import run_cli
from edgefleet.cli.bundle import app as bundle_app
from edgefleet.cli.demo import demo
from edgefleet.cli.drift import app as drift_app
from edgefleet.cli.export import export
from edgefleet.cli.fleet import app as fleet_app
from edgefleet.cli.import_model import app as import_app
from edgefleet.cli.keys import app as keys_app
from edgefleet.cli.package import app as package_app
from edgefleet.cli.rollout import app as rollout_app
from edgefleet.cli.samples import app as samples_app
from edgefleet.cli.schemas import schemas
from edgefleet.cli.server import server
from edgefleet.cli.train import app as train_app

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
app.add_typer(fleet_app, name="fleet")
app.add_typer(agent_app, name="agent")
app.add_typer(bundle_app, name="bundle")
app.add_typer(import_app, name="import")
app.add_typer(rollout_app, name="rollout")
app.add_typer(samples_app, name="samples")
app.add_typer(drift_app, name="drift")
app.command()(export)
app.command()(schemas)
app.command()(demo)
app.command()(server)


def main() -> None:
    """Run the ``edgefleet`` command line."""
    run_cli(app)

"""``edgefleet-agent``: the agent's own command line; ``edgefleet agent`` mounts the same commands."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

__all__ = ["app", "main", "run"]

app = typer.Typer(name="edgefleet-agent", help="The edgefleet edge agent.", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """The edgefleet edge agent: runs a model package on a device and reports over MQTT."""


@app.command()
def run(
    config: Annotated[Path | None, typer.Option(help="the agent's TOML file (EDGEFLEET_AGENT_* overrides it)")] = None,
    once: Annotated[int | None, typer.Option(help="serve this many windows, report, and exit")] = None,
) -> None:
    """Run the configured package on the input source and report over MQTT until SIGTERM or Ctrl-C."""
    from edge_agent import Agent, load_settings
    from edge_agent.enroll import with_credentials
    from edgefleet.logs import configure

    configure()
    agent = Agent(with_credentials(load_settings(config)))
    # SIGTERM (systemd, docker stop) finishes the interval, sends what the outbox holds and says offline, like
    # Ctrl-C; installed before start, so a SIGTERM while connecting does not kill the agent mid-way either
    signal.signal(signal.SIGTERM, lambda *_: agent.stop())
    agent.start()
    try:
        served = agent.run(max_windows=once)
    except KeyboardInterrupt:
        served = 0
    finally:
        agent.close()
    Console(stderr=True).print(f"agent {agent.settings.device_id} stopped after {served} windows")


def main() -> None:
    """Entry point of the ``edgefleet-agent`` console script."""
    # imported here: edgefleet's command line also mounts this app, so a top-level import would be circular
    from edgefleet.cli import run_cli

    run_cli(app)

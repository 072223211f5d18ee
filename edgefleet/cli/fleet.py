"""``edgefleet fleet``: emulated devices running the real agent code."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

__all__ = ["app", "emulate"]

app = typer.Typer(help="Emulated fleets.", no_args_is_help=True)


@app.command()
def emulate(
    package: Annotated[Path, typer.Option(help="the .efpkg every device runs")],
    trust: Annotated[list[Path], typer.Option(help="a trusted public key (repeat for several)")],
    devices: Annotated[int, typer.Option(min=1, max=10_000, help="how many devices")] = 3,
    broker_host: Annotated[str, typer.Option(help="MQTT broker address")] = "127.0.0.1",
    broker_port: Annotated[int, typer.Option(help="MQTT broker port")] = 1883,
    data_dir: Annotated[Path, typer.Option(help="one folder per device is made in here")] = Path(".edgefleet/fleet"),
    interval: Annotated[float, typer.Option(min=0.1, help="telemetry interval, seconds")] = 10.0,
    duration: Annotated[float | None, typer.Option(min=0, help="stop after this many seconds")] = None,
    profile: Annotated[
        list[str] | None, typer.Option(help="device profiles to cycle through (repeat; default: all built-in)")
    ] = None,
    fault: Annotated[list[str] | None, typer.Option(help="machine faults to cycle through (repeat)")] = None,
) -> None:
    """Run N emulated devices against a broker until Ctrl-C (or --duration)."""
    from devices import PROFILES, Fleet
    from edgefleet.logs import configure

    configure("WARNING")
    fleet = Fleet(
        devices,
        package,
        trust,
        broker_host,
        broker_port,
        data_dir,
        telemetry_interval_s=interval,
        profiles=tuple(profile or PROFILES),
        faults=tuple(fault or ("normal",)),
    )
    fleet.start()
    Console(stderr=True).print(f"{devices} emulated devices report to {broker_host}:{broker_port}; Ctrl-C to stop")
    try:
        threading.Event().wait(duration)
    except KeyboardInterrupt:
        pass
    finally:
        fleet.stop()

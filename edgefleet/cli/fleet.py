"""``edgefleet fleet``: emulated devices running the real agent code."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

__all__ = ["app", "emulate"]

app = typer.Typer(help="Emulated fleets.", no_args_is_help=True)

_INJECT_HELP = (
    "injected faults to cycle through (repeat): none, gain, offset, bearing-onset, bearing-gradual, dirty-lens, "
    "partition, slow-download, cut-download, broker-restart (needs --start-broker), disk-full (needs root), "
    "crash-mid-update"
)


@app.command()
def emulate(
    package: Annotated[Path, typer.Option(help="the .efpkg every device runs")],
    trust: Annotated[list[Path], typer.Option(help="a trusted public key (repeat for several)")],
    devices: Annotated[int, typer.Option(min=1, max=10_000, help="how many devices")] = 3,
    broker_host: Annotated[str, typer.Option(help="MQTT broker address")] = "127.0.0.1",
    broker_port: Annotated[int, typer.Option(help="MQTT broker port")] = 1883,
    start_broker: Annotated[
        bool, typer.Option(help="start a Mosquitto on --broker-port (0: a free port) for the fleet")
    ] = False,
    data_dir: Annotated[Path, typer.Option(help="one folder per device is made in here")] = Path(".edgefleet/fleet"),
    interval: Annotated[float, typer.Option(min=0.1, help="telemetry interval, seconds")] = 10.0,
    rate: Annotated[float, typer.Option(min=0, help="sensor windows or camera images per second per device")] = 20.0,
    duration: Annotated[float | None, typer.Option(min=0, help="stop after this many seconds")] = None,
    profile: Annotated[
        list[str] | None, typer.Option(help="device profiles to cycle through (repeat; default: all built-in)")
    ] = None,
    fault: Annotated[list[str] | None, typer.Option(help="machine faults to cycle through (repeat)")] = None,
    inject: Annotated[list[str] | None, typer.Option(help=_INJECT_HELP)] = None,
    inject_after: Annotated[float, typer.Option(min=0, help="seconds before injected faults start")] = 0.0,
    fault_s: Annotated[
        float, typer.Option(min=0, help="how long a partition or broker outage lasts, or a gradual fault grows, s")
    ] = 30.0,
    crash_at: Annotated[
        str, typer.Option(help="the update step where crash-mid-update kills the device (NAME or NAME@N)")
    ] = "staged",
) -> None:
    """Run N emulated devices against a broker until Ctrl-C (or --duration).

    More than 120 devices run in several processes (paho-mqtt's select() loop cannot watch more sockets in one).
    """
    from devices import PROFILES, Fleet
    from devices.broker import Mosquitto
    from devices.emulator import MAX_DEVICES_PER_PROCESS
    from devices.shards import ShardedFleet
    from edgefleet.logs import configure

    configure("WARNING")
    broker = Mosquitto(data_dir / "mosquitto", broker_port if broker_port else 0) if start_broker else None
    fleet = Fleet(
        devices,
        package,
        trust,
        "127.0.0.1" if broker is not None else broker_host,
        broker.port if broker is not None else broker_port,
        data_dir,
        telemetry_interval_s=interval,
        windows_per_s=rate,
        profiles=tuple(profile or PROFILES),
        faults=tuple(fault or ("normal",)),
        injections=tuple(inject or ("none",)),
        inject_after_s=inject_after,
        fault_s=fault_s,
        crash_at=crash_at,
        broker=broker,
    )
    running: Fleet | ShardedFleet = fleet if devices <= MAX_DEVICES_PER_PROCESS else ShardedFleet(fleet)
    if broker is not None:
        broker.start()
    try:
        running.start()
        Console(stderr=True).print(
            f"{devices} emulated devices report to {fleet.broker_host}:{fleet.broker_port}; Ctrl-C to stop"
        )
        try:
            threading.Event().wait(duration)
        except KeyboardInterrupt:
            pass
        finally:
            running.stop()
    finally:
        if broker is not None:
            broker.stop()

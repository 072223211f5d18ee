"""``edgefleet demo``: the whole scenario, step by step, from training to devices reporting to the server."""

from __future__ import annotations

import logging
import shutil
import socket
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Final

import typer
from rich.console import Console
from rich.table import Table

from edgefleet.errors import EdgefleetError, GateError

__all__ = ["demo"]

_out = Console()
_err = Console(stderr=True, soft_wrap=True)
DEVICES: Final = 3
# each emulated machine has its own condition, so the telemetry shows the model telling them apart
FAULTS: Final = ("normal", "imbalance", "bearing_outer")
VERSION: Final = "1.0.0"


@dataclass
class _Scenario:
    root: Path
    http_port: int
    mqtt_port: int
    interval_s: float
    cleanup: ExitStack = field(default_factory=ExitStack)
    private_key: Path = Path()
    public_key: Path = Path()
    package: Path = Path()
    base_url: str = ""

    def keys(self) -> str:
        from edgefleet.signing import PRIVATE_KEY_FILE, PUBLIC_KEY_FILE, generate_keys

        folder = self.root / "keys"
        if (folder / PRIVATE_KEY_FILE).exists():
            self.private_key, self.public_key = folder / PRIVATE_KEY_FILE, folder / PUBLIC_KEY_FILE
            return f"reused {folder}"
        self.private_key, self.public_key = generate_keys(folder)
        return f"new Ed25519 key pair in {folder}"

    def train(self) -> str:
        from train import PdmConfig, train_pdm

        run = train_pdm(PdmConfig(), self.root / "run")
        return f"sensor CNN, held-out macro-F1 {run.metrics['macro_f1']:.3f}"

    def export(self) -> str:
        from export import export_run

        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        report = export_run(self.root / "run", self.root / "export")
        if report.failed:
            raise GateError(f"{', '.join(a.path for a in report.failed)} missed a gate", hint="see export.html")
        return ", ".join(
            f"{a.format} {a.precision} {a.size_bytes / 1024:.0f} KiB agree {a.top1_agreement:.3f}"
            for a in report.artifacts
        )

    def sign(self) -> str:
        from export.packaging import package_export

        self.package = package_export(
            self.root / "export",
            key=self.private_key,
            version=VERSION,
            out=self.root / f"pump-vibration-{VERSION}.efpkg",
        )
        return f"{self.package} ({self.package.stat().st_size / 1024:.0f} KiB)"

    def server(self) -> str:
        from fleet_server.serve import ServerHandle
        from fleet_server.settings import MqttSettings, ServerSettings

        settings = ServerSettings(
            data_dir=self.root / "server",
            http_port=self.http_port,
            mqtt=MqttSettings(port=self.mqtt_port),
        )
        handle = ServerHandle(settings)
        handle.start()
        self.cleanup.callback(handle.stop)
        self.base_url = handle.base_url
        self.admin_token_file = settings.resolved_admin_token_file()
        return f"API {self.base_url}/docs, MQTT broker 127.0.0.1:{self.mqtt_port} (embedded), SQLite"

    def devices(self) -> str:
        from devices.emulator import Fleet

        fleet = Fleet(
            devices=DEVICES,
            package=self.package,
            trusted_keys=[self.public_key],
            broker_host="127.0.0.1",
            broker_port=self.mqtt_port,
            data_dir=self.root / "devices",
            telemetry_interval_s=self.interval_s,
            faults=FAULTS,
        )
        fleet.start()
        self.cleanup.callback(fleet.stop)
        return f"{DEVICES} emulated devices running the edge agent, machines: {', '.join(FAULTS)}"

    def telemetry(self) -> str:
        from edgefleet.package import inspect_package

        devices = _wait_for_fleet(self.base_url, self.admin_token_file.read_text().strip(), timeout_s=90)
        _out.print(_device_table(devices, inspect_package(self.package).labels))
        return f"{len(devices)} devices online, {sum(d['inference_count'] for d in devices)} inferences reported"


def _wait_for_fleet(base_url: str, token: str, timeout_s: float) -> list[dict[str, Any]]:
    import httpx

    deadline = time.monotonic() + timeout_s
    devices: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        devices = httpx.get(
            f"{base_url}/api/v1/devices", headers={"Authorization": f"Bearer {token}"}, timeout=5
        ).json()
        ready = [
            d for d in devices if d["state"] == "online" and d["inference_count"] > 0 and d["model_version"] == VERSION
        ]
        if len(ready) >= DEVICES:
            return ready
        time.sleep(0.5)
    raise EdgefleetError(
        f"after {timeout_s:.0f} s the server lists {len(devices)} devices, not {DEVICES} online with telemetry",
        hint="look at the agent and ingest logs above",
    )


def _device_table(devices: list[dict[str, Any]], labels: list[str]) -> Table:
    table = Table(title="GET /api/v1/devices")
    for column in ("device", "state", "profile", "model", "inferences", "machine", "model sees"):
        table.add_column(column, no_wrap=True)
    table.caption = "machine: the condition each emulated device simulates; model sees: its last interval's top class"
    for d, fault in zip(devices, FAULTS, strict=False):
        counts = d["latest_class_counts"]
        seen = labels[counts.index(max(counts))] if counts and max(counts) > 0 else "-"
        table.add_row(
            d["id"],
            d["state"],
            d["profile"],
            str(d["model_version"]),
            str(d["inference_count"]),
            fault,
            seen,
        )
    return table


def _port(preferred: int) -> int:
    """``preferred`` when it is free, else any free port, so a second demo does not fail on a busy port."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
        except OSError:
            sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def demo(
    once: Annotated[
        bool, typer.Option("--once", help="exit when the scenario is done (non-zero if a step failed)")
    ] = False,
    out: Annotated[Path, typer.Option(help="where the demo keeps its files")] = Path(".edgefleet/demo"),
    http_port: Annotated[int, typer.Option(help="the server's HTTP port (another one if busy)")] = 8080,
    mqtt_port: Annotated[int, typer.Option(help="the embedded broker's port (another one if busy)")] = 1883,
) -> None:
    """Train, export, sign, serve, run emulated devices, and show their telemetry; then keep serving."""
    from edgefleet.logs import configure

    configure("WARNING")
    for stale in ("run", "export", "server", "devices"):
        shutil.rmtree(out / stale, ignore_errors=True)
    scenario = _Scenario(out, _port(http_port), _port(mqtt_port), interval_s=2.0)
    steps: list[tuple[str, Callable[[], str]]] = [
        ("keys", scenario.keys),
        ("train", scenario.train),
        ("export", scenario.export),
        ("package", scenario.sign),
        ("server", scenario.server),
        ("devices", scenario.devices),
        ("telemetry", scenario.telemetry),
    ]
    with scenario.cleanup:
        for name, action in steps:
            started = time.monotonic()
            try:
                with _err.status(f"{name} …"):
                    result = action()
            except Exception as err:  # any failure of a step ends the demo, named, with exit 1
                _err.print(f"[bold red]✗ {name}[/] failed: {type(err).__name__}: {err}")
                raise typer.Exit(1) from err
            _err.print(f"[green]✓ {name}[/] ({time.monotonic() - started:.1f} s) {result}")
        if once:
            _err.print("[bold green]demo complete[/]")
            return
        _err.print(
            f"\n[bold]serving[/]: devices {scenario.base_url}/api/v1/devices · API docs {scenario.base_url}/docs · "
            f"metrics {scenario.base_url}/metrics · MQTT 127.0.0.1:{scenario.mqtt_port}\nCtrl-C to stop."
        )
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            _err.print("stopping")

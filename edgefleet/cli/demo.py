"""``edgefleet demo``: the whole scenario — train, export, sign, serve, enroll a fleet, roll out, drift, roll back.

Every step runs the real parts: both model families trained (short runs) and exported, signed packages in the
server's registry, about twenty emulated devices running the real agent (they enroll themselves with
provisioning tokens), rollouts through the HTTP API, drift injected into one production line, and a bad
version whose gate fails. ``--once`` exits 0 only when every expected outcome happened.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Final, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from edgefleet.errors import EdgefleetError, GateError
from edgefleet.ports import free_port

__all__ = ["demo"]

T = TypeVar("T")

_out = Console()
_err = Console(stderr=True, soft_wrap=True)
SENSOR_MODEL: Final = "pump-vibration"
# a line's pumps share one device profile, so each line is one cohort (model version × profile × tag) of as many
# devices as a cohort needs to be judged against the package's reference (DriftThresholds.min_cohort_devices)
PER_LINE: Final = 10
LINE_1_PROFILES: Final = ("rpi4b",)
LINE_2_PROFILES: Final = ("rpi5",)
CAMERA_PROFILES: Final = ("rpi5", "jetson-orin-nano")
# what the demo rolls out: a factory image on every device, then v1, v2 in waves, and a bad v3
FACTORY, V1, V2, V3 = "0.9.0", "1.0.0", "2.0.0", "3.0.0"
_INTERVAL_S: Final = 2.0
_WINDOWS_PER_S: Final = 5.0
_STEP_TIMEOUT_S: Final = 240.0


@dataclass
class _Scenario:
    root: Path
    http_port: int
    mqtt_port: int
    cleanup: ExitStack = field(default_factory=ExitStack)
    private_key: Path = Path()
    public_key: Path = Path()
    packages: dict[str, Path] = field(default_factory=dict)
    base_url: str = ""
    token: str = ""
    outcomes: dict[str, tuple[bool, str]] = field(default_factory=dict)
    _drift: threading.Event = field(default_factory=threading.Event)
    _http: Any = None

    # -- build ------------------------------------------------------------------------------------------------

    def keys(self) -> str:
        from edgefleet.signing import PRIVATE_KEY_FILE, PUBLIC_KEY_FILE, generate_keys

        folder = self.root / "keys"
        if (folder / PRIVATE_KEY_FILE).exists():
            self.private_key, self.public_key = folder / PRIVATE_KEY_FILE, folder / PUBLIC_KEY_FILE
            return f"reused {folder}"
        self.private_key, self.public_key = generate_keys(folder)
        return f"new Ed25519 key pair in {folder}"

    def train(self) -> str:
        from train import PdmConfig, VisionConfig, train_pdm, train_vision

        pdm = train_pdm(PdmConfig(), self.root / "runs" / "pdm")
        # v3: eight times as wide, so some sixty times the work per window: too slow for the devices it goes to
        train_pdm(PdmConfig(width=192, epochs=2), self.root / "runs" / "pdm-wide")
        # smaller images and fewer of them than the default: about half a minute for a macro-F1 near 0.9
        vision = train_vision(VisionConfig(size=48, per_class=300, patience=10), self.root / "runs" / "vision")
        return (
            f"sensor CNN macro-F1 {pdm.metrics['macro_f1']:.3f}; an 8x wider one (v3); "
            f"image CNN macro-F1 {vision.metrics['macro_f1']:.3f}"
        )

    def export(self) -> str:
        from edgefleet.manifest import ArtifactFormat, Precision
        from export import ExportOptions, export_run

        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        onnx_int8 = ExportOptions(formats=(ArtifactFormat.ONNX,), precisions=(Precision.INT8,), latency_runs=20)
        onnx_fp32 = ExportOptions(formats=(ArtifactFormat.ONNX,), precisions=(Precision.FP32,), latency_runs=20)
        results = []
        for run, options in (("pdm", ExportOptions(latency_runs=20)), ("pdm-wide", onnx_fp32), ("vision", onnx_int8)):
            report = export_run(self.root / "runs" / run, self.root / "exports" / run, options)
            if report.failed:
                raise GateError(f"{', '.join(a.path for a in report.failed)} missed a gate", hint="see export.html")
            results.append(f"{run}: " + ", ".join(f"{a.format} {a.precision}" for a in report.artifacts))
        return "; ".join(results)

    def sign(self) -> str:
        from export.packaging import package_export

        plan = {FACTORY: "pdm", V1: "pdm", V2: "pdm", V3: "pdm-wide", "vision": "vision"}
        for version, run in plan.items():
            self.packages[version] = package_export(
                self.root / "exports" / run,
                key=self.private_key,
                version="1.0.0" if version == "vision" else version,
                out=self.root / "packages" / f"{run}-{version}.efpkg",
            )
        return f"{len(plan)} signed packages in {self.root / 'packages'}"

    # -- serve ------------------------------------------------------------------------------------------------

    def server(self) -> str:
        import httpx

        from fleet_server.drift.settings import DriftSettings
        from fleet_server.serve import ServerHandle
        from fleet_server.settings import MqttSettings, ServerSettings

        settings = ServerSettings(
            data_dir=self.root / "server",
            http_port=self.http_port,
            mqtt=MqttSettings(port=self.mqtt_port),
            trusted_keys=[self.public_key],
            rollout_tick_s=0.5,
            offline_after_s=30,
            # a demo's minutes stand for an operator's hours: drift is checked every few seconds over a minute.
            # Devices keep collecting their own baselines for the whole demo (an operator's are its first 30 min),
            # so cohorts, against the package's reference, are what is judged
            drift=DriftSettings(window_s=60, check_interval_s=4, bucket_s=30, baseline_s=3600),
        )
        handle = ServerHandle(settings)
        handle.start()
        self.cleanup.callback(handle.stop)
        self.base_url = handle.base_url
        self.token = settings.resolved_admin_token_file().read_text().strip()
        self._http = self.cleanup.enter_context(
            httpx.Client(base_url=self.base_url, headers={"Authorization": f"Bearer {self.token}"}, timeout=30)
        )
        for version in (V1, V2, V3):
            uploaded = self._http.post("/api/v1/models", content=self.packages[version].read_bytes())
            uploaded.raise_for_status()
        return f"API {self.base_url}/docs, dashboard {self.base_url}/dashboard, MQTT 127.0.0.1:{self.mqtt_port}"

    def devices(self) -> str:
        from devices.emulator import Fleet
        from edge_agent.settings import EnrollmentSettings, UpdateSettings

        # a short health window for a demo; latency judged loosely (5x): twenty devices share this machine's two
        # cores with the server, and one slow second is not a slow model. The bad v3 does far more work per window
        updates = UpdateSettings(health_window_s=10, health_min_inferences=30, max_latency_ratio=5.0)
        fleets = [
            (["pumps", "line-1"], self.packages[FACTORY], LINE_1_PROFILES, PER_LINE, ("none",), 0),
            (["pumps", "line-2"], self.packages[FACTORY], LINE_2_PROFILES, PER_LINE, ("gain",), PER_LINE),
            (["inspection"], self.packages["vision"], CAMERA_PROFILES, len(CAMERA_PROFILES), ("none",), 2 * PER_LINE),
        ]
        for tags, package, profiles, count, injections, first in fleets:
            provisioning = self._http.post("/api/v1/provisioning-tokens", json={"uses": count, "tags": tags})
            provisioning.raise_for_status()
            fleet = Fleet(
                devices=count,
                package=package,
                trusted_keys=[self.public_key],
                broker_host="127.0.0.1",
                broker_port=self.mqtt_port,
                data_dir=self.root / "devices",
                telemetry_interval_s=_INTERVAL_S,
                windows_per_s=_WINDOWS_PER_S,
                profiles=profiles,
                injections=injections,
                faults_armed=self._drift,
                first_index=first,
                updates=updates,
                enrollment=EnrollmentSettings(
                    server_url=self.base_url, provisioning_token=provisioning.json()["token"]
                ),
            )
            fleet.start()
            self.cleanup.callback(fleet.stop)
        total = 2 * PER_LINE + len(CAMERA_PROFILES)
        online = self._wait(lambda: len([d for d in self._devices() if d["inference_count"] > 0]) >= total, "online")
        return f"{total} devices enrolled themselves and report ({online}): two pump lines and {len(CAMERA_PROFILES)} cameras"

    # -- roll out, drift, roll back -----------------------------------------------------------------------------

    def rollout_v1(self) -> str:
        rollout = self._rollout(V1, ["pumps"], [{"percent": 100}])
        done = self._settle(rollout)
        on_v1 = self._versions(["pumps"]).get(V1, 0)
        self._expect(
            "v1 on every pump",
            done["state"] == "completed" and on_v1 == 2 * PER_LINE,
            f"{on_v1} devices on {V1}" + _unless_completed(done),
        )
        return f"{rollout} {done['state']}: {on_v1} devices on {V1}"

    def rollout_v2(self) -> str:
        rollout = self._rollout(V2, ["pumps"], [{"devices": 1}, {"percent": 50}, {"percent": 100}])
        done = self._settle(rollout)
        on_v2 = self._versions(["pumps"]).get(V2, 0)
        canary = done["spec"]["waves"][0].get("devices")
        self._expect(
            "v2 in waves, canary first",
            done["state"] == "completed" and on_v2 == 2 * PER_LINE and canary == 1,
            f"first wave {canary} device, {on_v2} on {V2}" + _unless_completed(done),
        )
        return f"{rollout} {done['state']}: canary {canary} device, then 50 %, 100 %; {on_v2} devices on {V2}"

    def drift(self) -> str:
        from datetime import UTC, datetime

        injected_at = datetime.now(UTC)
        self._drift.set()  # line 2's accelerometers start reading 80 % high (devices.faults: gain)

        def raised() -> list[dict[str, Any]]:
            # an alarm of line 2's cohorts on the running version, on an axis the gain changed, that began after
            return [
                a
                for a in self._alarms("line-2")
                if a["model_version"] == V2
                and (a["worst_feature"] or "").startswith(("accel_x", "accel_y"))
                and datetime.fromisoformat(a["since"]) >= injected_at
            ]

        alarms = self._wait(raised, "a drift alarm on line 2's accelerometers", timeout_s=150)
        line_1 = [a for a in self._alarms("line-1") if a["model_version"] == V2]
        worst = max(alarms, key=lambda a: a["worst_psi"] or 0.0)
        where = worst["device_id"] or f"cohort {worst['model_version']}/{worst['profile']}/{worst['tag']}"
        self._expect("drift alarm on line 2", True, f"{where}: {worst['worst_feature']} PSI {worst['worst_psi']:.2f}")
        return (
            f"{len(alarms)} alarms on line 2's accelerometers, worst {where} ({worst['worst_feature']}); "
            f"line 1 has {len(line_1)}"
        )

    def rollout_v3(self) -> str:
        # held to the default latency gate (1.5x the previous version on the same devices), aborted when it fails
        rollout = self._rollout(V3, ["line-1"], [{"devices": 1}, {"percent": 100}], "abort", latency_ratio=1.5)
        done = self._settle(rollout, settled=("aborted", "paused", "completed"))
        back = self._wait(lambda: self._versions(["line-1"]).get(V2, 0) == PER_LINE, f"line 1 back on {V2}")
        self._expect(
            "bad v3 stopped and rolled back",
            done["state"] in ("aborted", "paused") and back,
            f"rollout {done['state']}, line 1 on {V2}: {back}",
        )
        return f"{rollout} {done['state']} ({done.get('reason', '')}); every line-1 device on {V2} again"

    # -- helpers ------------------------------------------------------------------------------------------------

    def _devices(self) -> list[dict[str, Any]]:
        answer = self._http.get("/api/v1/devices")
        answer.raise_for_status()
        devices: list[dict[str, Any]] = answer.json()
        return devices

    def _versions(self, tags: list[str]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for device in self._devices():
            if set(tags) <= set(device["tags"]) and device["state"] == "online":
                counts[device["model_version"]] = counts.get(device["model_version"], 0) + 1
        return counts

    def _alarms(self, tag: str) -> list[dict[str, Any]]:
        answer = self._http.get("/api/v1/drift/alarms", params={"level": "alarm"})
        answer.raise_for_status()
        tagged = {d["id"] for d in self._devices() if tag in d["tags"]}
        return [a for a in answer.json() if a.get("device_id") in tagged or a.get("tag") == tag]

    def _rollout(
        self,
        version: str,
        tags: list[str],
        waves: list[dict[str, int]],
        on_failure: str = "pause",
        latency_ratio: float = 5.0,
    ) -> str:
        spec = {
            "package": f"{SENSOR_MODEL}@{version}",
            "selector": {"tags": tags},
            "waves": waves,
            # the bake outlasts the devices' own health window; a drift alarm on an updated device's cohort fails
            # its wave, as by default
            "gates": {
                "bake_s": 12,
                "min_reported": 1.0,
                "min_success": 1.0,
                "max_latency_ratio": latency_ratio,
                "wave_timeout_s": 120,
            },
            "on_failure": on_failure,
            "download_deadline_s": 120,
        }
        created = self._http.post("/api/v1/rollouts", json=spec)
        created.raise_for_status()
        return str(created.json()["id"])

    def _settle(self, rollout: str, settled: tuple[str, ...] = ("completed", "aborted", "paused")) -> dict[str, Any]:
        def state() -> dict[str, Any] | None:
            status: dict[str, Any] = self._http.get(f"/api/v1/rollouts/{rollout}").json()
            return status if status["state"] in settled else None

        return self._wait(state, f"rollout {rollout} to settle")

    def _wait(self, condition: Callable[[], T | None], what: str, timeout_s: float = _STEP_TIMEOUT_S) -> T:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            time.sleep(1.0)
        raise EdgefleetError(f"waited {timeout_s:.0f} s for {what}", hint="look at the dashboard and the logs above")

    def _expect(self, outcome: str, ok: bool, detail: str) -> None:
        self.outcomes[outcome] = (ok, detail)
        if not ok:
            raise EdgefleetError(f"expected: {outcome}; got: {detail}", hint="look at the dashboard and the logs")

    def summary(self) -> Table:
        table = Table(title="edgefleet demo: what happened")
        table.add_column("expected outcome")
        table.add_column("", no_wrap=True)
        table.add_column("seen")
        for outcome, (ok, detail) in self.outcomes.items():
            table.add_row(outcome, "[green]✓[/]" if ok else "[red]✗[/]", detail)
        table.caption = (
            f"dashboard {self.base_url}/dashboard · sign in with the admin token in "
            f"{self.root / 'server' / 'admin.token'}"
        )
        return table


def _unless_completed(rollout: dict[str, Any]) -> str:
    """Why a rollout that should have completed did not, for the summary."""
    return "" if rollout["state"] == "completed" else f"; rollout {rollout['state']}: {rollout['reason']}"


def demo(
    once: Annotated[
        bool, typer.Option("--once", help="exit when the scenario is done (non-zero if an outcome was missed)")
    ] = False,
    out: Annotated[Path, typer.Option(help="where the demo keeps its files")] = Path(".edgefleet/demo"),
    http_port: Annotated[int, typer.Option(help="the server's HTTP port (another one if busy)")] = 8080,
    mqtt_port: Annotated[int, typer.Option(help="the embedded broker's port (another one if busy)")] = 1883,
) -> None:
    """Train, export, sign, serve, enroll a fleet, roll out in waves, see drift, stop a bad version; keep serving."""
    from edgefleet.logs import configure

    configure("WARNING")
    for stale in ("runs", "exports", "packages", "server", "devices"):
        shutil.rmtree(out / stale, ignore_errors=True)
    scenario = _Scenario(out, free_port(http_port), free_port(mqtt_port))
    steps: list[tuple[str, Callable[[], str]]] = [
        ("keys", scenario.keys),
        ("train", scenario.train),
        ("export", scenario.export),
        ("package", scenario.sign),
        ("server", scenario.server),
        ("devices", scenario.devices),
        ("rollout v1", scenario.rollout_v1),
        ("rollout v2", scenario.rollout_v2),
        ("drift", scenario.drift),
        ("rollout v3", scenario.rollout_v3),
    ]
    with scenario.cleanup:
        for name, action in steps:
            started = time.monotonic()
            try:
                with _err.status(f"{name} …"):
                    result = action()
            except Exception as err:  # any failure of a step ends the demo, named, with exit 1
                _err.print(f"[bold red]✗ {name}[/] failed: {type(err).__name__}: {err}")
                _out.print(scenario.summary())
                raise typer.Exit(1) from err
            _err.print(f"[green]✓ {name}[/] ({time.monotonic() - started:.1f} s) {result}")
        _out.print(scenario.summary())
        if once:
            _err.print("[bold green]demo complete: every expected outcome happened[/]")
            return
        _err.print(
            f"\n[bold]serving[/]: dashboard {scenario.base_url}/dashboard · API docs {scenario.base_url}/docs · "
            f"metrics {scenario.base_url}/metrics · MQTT 127.0.0.1:{scenario.mqtt_port}\nCtrl-C to stop."
        )
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            _err.print("stopping")

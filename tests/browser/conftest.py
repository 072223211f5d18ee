"""A real fleet for the dashboard: a server, four enrolled agents on several profiles, two package versions (one
with its export metrics) and a rollout waiting in its canary wave; Debian's Chromium driven by Playwright.

Screenshots go to ``.edgefleet/screenshots`` at the repository's root (``EDGEFLEET_SCREENSHOTS`` overrides it).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge_agent import AgentSettings, BrokerSettings, SimulatedSourceSettings
from edge_agent.settings import UpdateSettings
from edgefleet.manifest import LatencyEstimate, Metrics
from edgefleet.package import build_package
from edgefleet.signing import PRIVATE_KEY_FILE, load_private_key
from fleet_server import MqttSettings, ServerHandle, ServerSettings
from fleet_server.auth import read_token_file
from fleet_server.drift.settings import DriftSettings
from tests.agent.tiny import TinyPackage, build_tiny_package
from tests.agent.update_support import serving
from tests.support import free_port, wait_until

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
PROFILES = ["rpi4b", "rpi5", "jetson-orin-nano", "rpi4b"]
SCREENSHOTS = Path(os.environ.get("EDGEFLEET_SCREENSHOTS", Path(__file__).parents[2] / ".edgefleet" / "screenshots"))


@dataclass(frozen=True)
class Stack:
    server: ServerHandle
    tokens: dict[str, str]  # admin, operator, viewer
    device_ids: list[str]
    rollout_id: str

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def api(self, role: str = "admin") -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url, timeout=10, headers={"Authorization": f"Bearer {self.tokens[role]}"}
        )

    def rollout(self) -> dict[str, Any]:
        with self.api() as http:
            body: dict[str, Any] = http.get(f"/api/v1/rollouts/{self.rollout_id}").json()
            return body


def _with_export_metrics(tiny: TinyPackage, root: Path) -> Path:
    """The same package, with the float and quantized figures an ``edgefleet export`` report puts in a manifest."""
    manifest = tiny.manifest.model_copy(
        update={
            "metrics": Metrics(
                dataset="held-out",
                reference={"accuracy": 0.962, "macro_f1": 0.955, "float_accuracy": 0.962},
                artifacts={
                    "model-fp32.onnx": {"accuracy": 0.962, "macro_f1": 0.955, "accuracy_drop": 0.0},
                    "model-int8.onnx": {"accuracy": 0.951, "macro_f1": 0.941, "accuracy_drop": 0.011},
                },
            ),
            "latency_estimates": [
                LatencyEstimate(profile=p, artifact="model-int8.onnx", p50_ms=0.4 * f, p95_ms=0.6 * f)
                for p, f in (("rpi4b", 1.0), ("rpi5", 0.5), ("jetson-orin-nano", 0.4))
            ],
        }
    )
    src = root / f"src-{manifest.version}-healthy"
    files = {a.path: src / a.path for a in manifest.artifacts}
    key = load_private_key(tiny.public_key.parent / PRIVATE_KEY_FILE)
    return build_package(manifest, files, key, root / f"tiny-pump-{manifest.version}-metrics.efpkg")


def _agent(v1: TinyPackage, root: Path, port: int, device_id: str, profile: str, token: str) -> AgentSettings:
    return AgentSettings(
        device_id=device_id,
        profile=profile,
        data_dir=root / device_id,
        broker=BrokerSettings(port=port),
        package=v1.path,
        trusted_keys=[v1.public_key],
        telemetry_interval_s=0.3,
        source=SimulatedSourceSettings(windows_per_s=60),
        updates=UpdateSettings(health_window_s=0.5, health_min_inferences=5, max_latency_ratio=50, auth_token=token),
    )


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("dashboard")
    v1 = build_tiny_package(root / "v1")
    v2 = build_tiny_package(root / "v2", version="2.0.0", seed=2, keys=v1.public_key.parent)
    settings = ServerSettings(
        data_dir=root / "server",
        http_port=free_port(),
        mqtt=MqttSettings(port=free_port()),
        trusted_keys=[v1.public_key],
        rollout_tick_s=0.2,
        drift=DriftSettings(check_interval_s=2.0),  # open drift alarms reach the overview within the test
    )
    server = ServerHandle(settings)
    server.start()
    try:
        with contextlib.ExitStack() as agents:
            admin = read_token_file(settings.resolved_admin_token_file())
            http = agents.enter_context(
                httpx.Client(base_url=server.base_url, timeout=10, headers={"Authorization": f"Bearer {admin}"})
            )
            tokens = {"admin": admin}
            for role in ("operator", "viewer"):
                created = http.post("/api/v1/tokens", json={"name": f"dana the {role}", "role": role})
                assert created.status_code == 201, created.text
                tokens[role] = created.json()["token"]
            provisioning = http.post("/api/v1/provisioning-tokens", json={"uses": len(PROFILES), "tags": ["line-1"]})
            assert provisioning.status_code == 201, provisioning.text
            device_ids = [f"press-{i + 1:02d}" for i in range(len(PROFILES))]
            for device_id, profile in zip(device_ids, PROFILES, strict=True):
                enrolled = http.post(
                    "/api/v1/devices/enroll",
                    json={
                        "provisioning_token": provisioning.json()["token"],
                        "device_id": device_id,
                        "profile": profile,
                    },
                )
                assert enrolled.status_code == 201, enrolled.text
                token = enrolled.json()["token"]
                agents.enter_context(serving(_agent(v1, root, settings.mqtt.port, device_id, profile, token)))
            wait_until(
                lambda: len([d for d in http.get("/api/v1/devices").json() if d["model_version"]]) == len(PROFILES),
                timeout_s=30,
            )
            for package in (v1.path, _with_export_metrics(v2, root / "v2")):
                uploaded = http.post(
                    "/api/v1/models", content=package.read_bytes(), headers={"Content-Type": "application/octet-stream"}
                )
                assert uploaded.status_code in (200, 201), uploaded.text
            # a long bake: the rollout waits in its canary wave, so an operator has something to pause
            spec = {
                "package": "tiny-pump@2.0.0",
                "selector": {"tags": ["line-1"]},
                "waves": [{"devices": 1}, {"percent": 50}, {"percent": 100}],
                "gates": {"bake_s": 3600, "min_reported": 1.0, "min_success": 1.0, "max_latency_ratio": 5.0},
            }
            created = http.post("/api/v1/rollouts", json=spec)
            assert created.status_code == 201, created.text
            rollout_id = created.json()["id"]
            wait_until(
                lambda: http.get(f"/api/v1/rollouts/{rollout_id}").json()["devices"] == {"committed": 1},
                timeout_s=60,
            )
            yield Stack(server, tokens, device_ids, rollout_id)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (make debs)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS

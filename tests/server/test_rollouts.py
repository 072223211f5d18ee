"""Staged rollouts end to end: a real server (HTTP, embedded broker, SQLite), real agents updating for real,
waves that advance on their gates, a bad version stopped at its canary, and abort."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge_agent import Agent, AgentSettings, BrokerSettings, SimulatedSourceSettings
from edge_agent.settings import UpdateSettings
from fleet_server import MqttSettings, ServerHandle, ServerSettings
from fleet_server.auth import read_token_file
from tests.agent.tiny import TinyPackage, Variant, build_tiny_package
from tests.agent.update_support import serving
from tests.support import free_port, wait_until

pytestmark = pytest.mark.integration

FLEET = 5
# these tests are about waves and rollback; the drift gate has its own tests (test_drift.py)
FAST_GATES = {
    "bake_s": 1.0,
    "min_reported": 1.0,
    "min_success": 1.0,
    "max_latency_ratio": 5.0,
    "drift_fails_at": None,
}


@dataclass(frozen=True)
class Versions:
    v1: TinyPackage
    v2: TinyPackage
    broken: TinyPackage


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> Versions:
    root = tmp_path_factory.mktemp("rollout-packages")
    v1 = build_tiny_package(root / "v1")
    keys = v1.public_key.parent
    return Versions(
        v1=v1,
        v2=build_tiny_package(root / "v2", version="2.0.0", seed=2, keys=keys),
        broken=build_tiny_package(root / "v3", version="3.0.0", variant=Variant.FAILS_LIVE, keys=keys),
    )


@dataclass
class Fleet:
    server: ServerHandle
    http: httpx.Client
    agents: list[Agent]

    def upload(self, package: TinyPackage) -> None:
        response = self.http.post(
            "/api/v1/models", content=package.path.read_bytes(), headers={"Content-Type": "application/octet-stream"}
        )
        assert response.status_code in (200, 201), response.text

    def rollout(self, rollout_id: str) -> dict[str, Any]:
        response = self.http.get(f"/api/v1/rollouts/{rollout_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def wait_for_state(self, rollout_id: str, *states: str, timeout_s: float = 60.0) -> dict[str, Any]:
        def settled() -> dict[str, Any] | None:
            rollout = self.rollout(rollout_id)
            return rollout if rollout["state"] in states else None

        found = wait_until(settled, timeout_s=timeout_s)
        assert found is not None
        return found

    def versions(self) -> list[str]:
        return sorted(a.current().active.version for a in self.agents if a.current() is not None)  # type: ignore[union-attr]


def _settings(versions: Versions, tmp_path: Path) -> ServerSettings:
    return ServerSettings(
        data_dir=tmp_path / "server",
        http_port=free_port(),
        mqtt=MqttSettings(port=free_port()),
        trusted_keys=[versions.v1.public_key],
        rollout_tick_s=0.2,
    )


def _start_fleet(stack: contextlib.ExitStack, server: ServerHandle, v1: TinyPackage, tmp_path: Path) -> Fleet:
    """Admin client, FLEET devices enrolled with one provisioning token (tag line-1), their agents serving."""
    admin = {"Authorization": f"Bearer {read_token_file(server.settings.resolved_admin_token_file())}"}
    http = stack.enter_context(httpx.Client(base_url=server.base_url, timeout=10, headers=admin))
    provisioning = http.post("/api/v1/provisioning-tokens", json={"uses": FLEET, "tags": ["line-1"]})
    assert provisioning.status_code == 201, provisioning.text
    agents = []
    for i in range(FLEET):
        enrolled = http.post(
            "/api/v1/devices/enroll",
            json={"provisioning_token": provisioning.json()["token"], "device_id": f"dev-{i}", "profile": "rpi4b"},
        )
        assert enrolled.status_code == 201, enrolled.text
        settings = _agent_settings(v1, tmp_path, server.settings.mqtt.port, i, enrolled.json()["token"])
        agents.append(stack.enter_context(serving(settings)))
    fleet = Fleet(server, http, agents)
    wait_until(lambda: len([d for d in http.get("/api/v1/devices").json() if d["model_version"]]) == FLEET)
    return fleet


@pytest.fixture
def fleet(versions: Versions, tmp_path: Path) -> Iterator[Fleet]:
    server = ServerHandle(_settings(versions, tmp_path))
    server.start()
    with contextlib.ExitStack() as stack:
        yield _start_fleet(stack, server, versions.v1, tmp_path)
    server.stop()


def _agent_settings(v1: TinyPackage, tmp_path: Path, port: int, index: int, token: str) -> AgentSettings:
    return AgentSettings(
        device_id=f"dev-{index}",
        profile="rpi4b",
        data_dir=tmp_path / f"agent-{index}",
        broker=BrokerSettings(port=port),
        package=v1.path,
        trusted_keys=[v1.public_key],
        telemetry_interval_s=0.2,
        source=SimulatedSourceSettings(windows_per_s=100),
        # the agents' own latency check is tested with the agent; a 50 µs model on a shared machine is too noisy
        updates=UpdateSettings(health_window_s=0.5, health_min_inferences=5, max_latency_ratio=50, auth_token=token),
    )


def test_a_rollout_goes_wave_by_wave_to_every_device(fleet: Fleet, versions: Versions) -> None:
    fleet.upload(versions.v2)
    spec = {
        "package": "tiny-pump@2.0.0",
        "selector": {"tags": ["line-1"], "profiles": ["rpi4b"]},
        "waves": [{"devices": 1}, {"percent": 50}, {"percent": 100}],
        "gates": FAST_GATES,
    }
    created = fleet.http.post("/api/v1/rollouts", json=spec)
    assert created.status_code == 201, created.text
    rollout_id = created.json()["id"]
    done = fleet.wait_for_state(rollout_id, "completed", "paused", "aborted")
    assert done["state"] == "completed", (done["reason"], [d["reason"] for d in done["device_updates"]])
    assert done["devices"] == {"committed": FLEET}
    assert [a["action"] for a in done["audit"]] == ["created", "wave-passed", "wave-passed", "completed"]
    assert all(g["passed"] for g in done["gates"])
    wait_until(lambda: fleet.versions() == ["2.0.0"] * FLEET)
    metrics = fleet.http.get("/metrics").text
    assert 'edgefleet_rollouts{state="completed"} 1.0' in metrics
    assert f'edgefleet_devices{{state="online"}} {FLEET}.0' in metrics
    assert "edgefleet_telemetry_rate" in metrics


def test_a_version_that_fails_its_canary_pauses_the_rollout_and_abort_rolls_it_back(
    fleet: Fleet, versions: Versions
) -> None:
    fleet.upload(versions.broken)
    spec = {"package": "tiny-pump@3.0.0", "gates": FAST_GATES | {"bake_s": 30.0}}
    rollout_id = fleet.http.post("/api/v1/rollouts", json=spec).json()["id"]
    paused = fleet.wait_for_state(rollout_id, "paused", "completed", "aborted")
    assert paused["state"] == "paused"
    assert "wave 1 failed its gates" in paused["reason"]
    assert "0 of 1 updates committed" in paused["reason"]
    assert paused["devices"] == {"rolled-back": 1}  # only the canary was ever touched
    assert fleet.versions() == ["1.0.0"] * FLEET
    aborted = fleet.http.post(f"/api/v1/rollouts/{rollout_id}/abort", json={"reason": "bad build"})
    assert aborted.status_code == 200, aborted.text
    assert aborted.json()["state"] == "aborted"
    assert fleet.http.post(f"/api/v1/rollouts/{rollout_id}/resume").status_code == 409
    assert [a["action"] for a in fleet.rollout(rollout_id)["audit"]] == ["created", "paused", "aborted"]


def test_unknown_package_and_rollout_are_answered_clearly(fleet: Fleet) -> None:
    missing = fleet.http.post("/api/v1/rollouts", json={"package": "tiny-pump@9.9.9"})
    assert missing.status_code == 404
    assert "upload it first" in missing.json()["detail"]
    assert fleet.http.get("/api/v1/rollouts/r-nope").status_code == 404
    bad = fleet.http.post("/api/v1/rollouts", json={"package": "tiny-pump@2.0.0", "waves": [{"percent": 50}]})
    assert bad.status_code == 422


def _server_process(settings: ServerSettings, log: Path) -> subprocess.Popen[bytes]:
    env = os.environ | {
        "EDGEFLEET_SERVER_DATA_DIR": str(settings.data_dir),
        "EDGEFLEET_SERVER_HTTP_PORT": str(settings.http_port),
        "EDGEFLEET_SERVER_MQTT__PORT": str(settings.mqtt.port),
        "EDGEFLEET_SERVER_TRUSTED_KEYS": json.dumps([str(k) for k in settings.trusted_keys]),
        "EDGEFLEET_SERVER_ROLLOUT_TICK_S": str(settings.rollout_tick_s),
    }
    with log.open("ab") as out:
        return subprocess.Popen([Path(sys.executable).parent / "edgefleet", "server"], stderr=out, env=env)


def test_a_rollout_survives_its_server_killed_in_the_middle_of_a_wave(versions: Versions, tmp_path: Path) -> None:
    settings = _settings(versions, tmp_path)
    log = tmp_path / "server.log"
    processes = [_server_process(settings, log)]
    try:
        with contextlib.ExitStack() as stack:
            wait_until(lambda: _answers(f"http://127.0.0.1:{settings.http_port}"), timeout_s=60)
            fleet = _start_fleet(stack, ServerHandle(settings), versions.v1, tmp_path)
            fleet.upload(versions.v2)
            spec = {
                "package": "tiny-pump@2.0.0",
                "waves": [{"devices": 1}, {"percent": 60}, {"percent": 100}],
                "gates": FAST_GATES | {"bake_s": 2.0},
            }
            rollout_id = fleet.http.post("/api/v1/rollouts", json=spec).json()["id"]
            wait_until(lambda: fleet.rollout(rollout_id)["wave"] == 2, timeout_s=60)
            processes[0].kill()  # SIGKILL: no shutdown, no flush, in the middle of wave 2
            processes[0].wait(10)
            processes.append(_server_process(settings, log))
            wait_until(lambda: _answers(f"http://127.0.0.1:{settings.http_port}"), timeout_s=60)
            done = fleet.wait_for_state(rollout_id, "completed", "paused", "aborted", timeout_s=90)
            assert done["state"] == "completed", (done["reason"], log.read_text()[-3000:])
            assert done["devices"] == {"committed": FLEET}
            assert [a["action"] for a in done["audit"]] == ["created", "wave-passed", "wave-passed", "completed"]
            wait_until(lambda: fleet.versions() == ["2.0.0"] * FLEET, timeout_s=30)
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
                process.wait(15)


def _answers(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/healthz").status_code == 200
    except httpx.TransportError:
        return False


def _edgefleet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [Path(sys.executable).parent / "edgefleet", *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_the_command_line_creates_shows_pauses_and_resumes_a_rollout(fleet: Fleet, versions: Versions) -> None:
    fleet.upload(versions.v2)
    token = fleet.http.headers["Authorization"].removeprefix("Bearer ")
    server = ["--server", fleet.server.base_url, "--token", token]
    created = _edgefleet("rollout", "create", "tiny-pump@2.0.0", "--waves", "1,100%", "--bake", "60", *server)
    assert created.returncode == 0, created.stderr
    rollout_id = created.stdout.split()[0]
    assert rollout_id.startswith("r-")
    assert "running" in created.stdout
    paused = _edgefleet("rollout", "pause", rollout_id, "--reason", "lunch", *server)
    assert paused.returncode == 0, paused.stderr
    assert "paused" in paused.stdout
    assert "lunch" in paused.stdout
    listed = _edgefleet("rollout", "status", *server)
    assert rollout_id in listed.stdout
    assert _edgefleet("rollout", "resume", rollout_id, *server).returncode == 0
    # a second resume is refused by the server: exit 1 with its reason, no traceback
    again = _edgefleet("rollout", "resume", rollout_id, *server)
    assert again.returncode == 1
    assert "cannot resume" in again.stderr
    assert "Traceback" not in again.stderr


def test_the_command_line_says_what_is_wrong_with_bad_input() -> None:
    waves = _edgefleet("rollout", "create", "tiny-pump@2.0.0", "--waves", "1,ten%")
    assert waves.returncode == 2
    assert "write waves like 1,10%,50%,100%" in waves.stderr
    unreachable = _edgefleet("rollout", "status", "--server", f"http://127.0.0.1:{free_port()}")
    assert unreachable.returncode == 2
    assert "cannot reach the fleet server" in unreachable.stderr
    assert "Traceback" not in unreachable.stderr

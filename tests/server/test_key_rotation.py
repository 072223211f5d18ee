"""Over-the-air rotation of the package-signing key, end to end: a real server and a real agent that trust only a
root key. The device gets the root-signed key list at enrollment, learns a rotated key from the package that
brings it, refuses the revoked key's packages, and is sent a newer list by the server without any package."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge_agent import Agent, AgentSettings, BrokerSettings, SimulatedSourceSettings
from edge_agent.enroll import with_credentials
from edge_agent.settings import UpdateSettings
from edgefleet.keylist import SignedKeyListV1, certify_keys
from edgefleet.signing import PRIVATE_KEY_FILE, PUBLIC_KEY_FILE, generate_keys, key_id, load_private_key
from fleet_server import MqttSettings, ServerHandle, ServerSettings
from fleet_server.auth import read_token_file
from tests.agent.tiny import TinyPackage, build_tiny_package
from tests.agent.update_support import serving
from tests.support import free_port, wait_until

pytestmark = pytest.mark.integration

GATES = {"bake_s": 0.5, "min_reported": 1.0, "min_success": 1.0, "max_latency_ratio": 50.0, "drift_fails_at": None}


@dataclass
class Signers:
    folder: Path

    def pair(self, name: str) -> Path:
        folder = self.folder / name
        if not (folder / PRIVATE_KEY_FILE).exists():
            generate_keys(folder)
        return folder

    def certify(self, *names: str, version: int) -> SignedKeyListV1:
        public = [load_private_key(self.pair(n) / PRIVATE_KEY_FILE).public_key() for n in names]
        root = load_private_key(self.pair("root") / PRIVATE_KEY_FILE)
        return certify_keys(public, root, version=version, expires=datetime.now(UTC) + timedelta(days=30))

    def key_id(self, name: str) -> str:
        return key_id(load_private_key(self.pair(name) / PRIVATE_KEY_FILE).public_key())


@dataclass
class Stack:
    server: ServerHandle
    http: httpx.Client
    signers: Signers
    packages: Path

    def upload(self, package: TinyPackage) -> httpx.Response:
        return self.http.post(
            "/api/v1/models", content=package.path.read_bytes(), headers={"Content-Type": "application/octet-stream"}
        )

    def keys(self) -> dict[str, Any]:
        body: dict[str, Any] = self.http.get("/api/v1/keys").json()
        return body

    def roll_out(self, package: str) -> dict[str, Any]:
        created = self.http.post("/api/v1/rollouts", json={"package": package, "gates": GATES})
        assert created.status_code == 201, created.text
        rollout_id = created.json()["id"]

        def settled() -> dict[str, Any] | None:
            rollout: dict[str, Any] = self.http.get(f"/api/v1/rollouts/{rollout_id}").json()
            return rollout if rollout["state"] in ("completed", "paused", "aborted") else None

        found = wait_until(settled, timeout_s=60)
        assert found is not None
        return found


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    signers = Signers(tmp_path / "keys")
    settings = ServerSettings(
        data_dir=tmp_path / "server",
        http_port=free_port(),
        mqtt=MqttSettings(port=free_port()),
        root_keys=[signers.pair("root") / PUBLIC_KEY_FILE],
        rollout_tick_s=0.2,
    )
    server = ServerHandle(settings)
    server.start()
    admin = {"Authorization": f"Bearer {read_token_file(settings.resolved_admin_token_file())}"}
    with httpx.Client(base_url=server.base_url, timeout=10, headers=admin) as http:
        yield Stack(server, http, signers, tmp_path / "packages")
    server.stop()


def _cli(stack: Stack, *args: str | Path) -> subprocess.CompletedProcess[str]:
    token = read_token_file(stack.server.settings.resolved_admin_token_file())
    env = {**os.environ, "COLUMNS": "200", "EDGEFLEET_SERVER_URL": stack.server.base_url, "EDGEFLEET_TOKEN": token}
    command = [sys.executable, "-m", "edgefleet", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60, check=False)


def _device(stack: Stack, factory: TinyPackage, tmp_path: Path) -> AgentSettings:
    token = stack.http.post("/api/v1/provisioning-tokens", json={"uses": 1}).json()["token"]
    settings = AgentSettings(
        device_id="rot-1",
        profile="rpi4b",
        data_dir=tmp_path / "agent",
        broker=BrokerSettings(port=stack.server.settings.mqtt.port),
        package=factory.path,
        root_keys=[stack.signers.pair("root") / PUBLIC_KEY_FILE],
        telemetry_interval_s=0.2,
        source=SimulatedSourceSettings(windows_per_s=100),
        updates=UpdateSettings(health_window_s=0.5, health_min_inferences=5, max_latency_ratio=50),
        enrollment={"server_url": stack.server.base_url, "provisioning_token": token},
    )
    return with_credentials(settings)


def test_a_signing_key_rotates_and_is_revoked_over_the_air(stack: Stack, tmp_path: Path) -> None:
    signers = stack.signers
    # before any key list the server trusts no signing key: an upload is refused
    v1 = build_tiny_package(stack.packages / "v1", keys=signers.pair("a"))
    assert stack.upload(v1).status_code == 422
    published = stack.http.put("/api/v1/keys", json=signers.certify("a", version=1).model_dump(mode="json"))
    assert published.status_code == 200, published.text
    assert published.json()["key_ids"] == [signers.key_id("a")]
    assert stack.upload(v1).status_code == 201

    # the device knows only the root key: enrollment hands it list 1, which vouches for its factory package
    settings = _device(stack, v1, tmp_path)
    with contextlib.ExitStack() as running:
        agent: Agent = running.enter_context(serving(settings))
        assert agent.keys.version == 1
        wait_until(lambda: stack.keys()["devices_by_version"] == {"1": 1})

        # rotation: key B, certified by list 2 (which drops A), travels inside the first package B signs
        v2 = build_tiny_package(
            stack.packages / "v2",
            version="2.0.0",
            seed=2,
            keys=signers.pair("b"),
            key_list=signers.certify("b", version=2),
        )
        assert stack.upload(v2).status_code == 201, "the server learns key B from the package's list"
        assert stack.keys()["version"] == 2
        done = stack.roll_out("tiny-pump@2.0.0")
        assert done["state"] == "completed", done["reason"]
        wait_until(lambda: agent.current() is not None and agent.current().active.version == "2.0.0")  # type: ignore[union-attr]
        assert agent.keys.version == 2
        wait_until(lambda: stack.keys()["devices_by_version"] == {"2": 1})

        # revoked: a package signed with A is refused, even with the old list that named A inside it
        v3 = build_tiny_package(
            stack.packages / "v3", version="3.0.0", keys=signers.pair("a"), key_list=signers.certify("a", version=1)
        )
        refused = stack.upload(v3)
        assert refused.status_code == 422
        assert signers.key_id("a") in refused.json()["detail"]
        assert signers.key_id("a") not in agent.keys

        # a newer list reaches the device without a package: `edgefleet keys publish`, and the server sends it on
        v3_file = tmp_path / "keys-v3.json"
        v3_file.write_text(signers.certify("b", "c", version=3).model_dump_json())
        sent = _cli(stack, "keys", "publish", v3_file)
        assert sent.returncode == 0, sent.stderr
        assert "version 3" in sent.stdout
        wait_until(lambda: agent.keys.version == 3, timeout_s=20)
        assert signers.key_id("c") in agent.keys
        wait_until(lambda: stack.keys()["devices_by_version"] == {"3": 1}, timeout_s=20)
        # and never back: the server refuses an older list, in one line that says what to do
        v2_file = tmp_path / "keys-v2.json"
        v2_file.write_text(signers.certify("a", version=2).model_dump_json())
        older = _cli(stack, "keys", "publish", v2_file)
        assert older.returncode == 2
        assert "409" in older.stderr
        assert "higher --version" in older.stderr
        assert "Traceback" not in older.stderr

    # a restart of the agent keeps list 3: the rotation and the revocation outlive it
    restarted = Agent(settings)
    assert restarted.keys.version == 3
    assert signers.key_id("a") not in restarted.keys
    restarted.close()

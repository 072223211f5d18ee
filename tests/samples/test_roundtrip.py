"""The loop on the wire: a real server asks a real agent (embedded broker) for its samples, the agent sends them
with its own token, the CLI pulls them into a training folder; a device cannot send for another id."""

from __future__ import annotations

import contextlib
import csv
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from edge_agent import AgentSettings, BrokerSettings, SimulatedSourceSettings
from edge_agent.settings import ReservoirSettings, UpdateSettings
from edgefleet.cli import app
from edgefleet.samples import LABELS_FILE, decode_samples
from edgefleet.sensor_sim import FAULTS
from fleet_server import MqttSettings, ServerHandle, ServerSettings
from fleet_server.api.routes.samples import MAX_UPLOAD_BYTES
from fleet_server.auth import read_token_file
from tests.agent.tiny import TinyPackage, build_tiny_package
from tests.agent.update_support import serving
from tests.support import free_port, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyPackage:
    return build_tiny_package(tmp_path_factory.mktemp("samples-tiny"))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerHandle]:
    settings = ServerSettings(data_dir=tmp_path / "server", http_port=free_port(), mqtt=MqttSettings(port=free_port()))
    handle = ServerHandle(settings)
    handle.start()
    yield handle
    handle.stop()


def _admin(server: ServerHandle) -> httpx.Client:
    token = read_token_file(server.settings.resolved_admin_token_file())
    return httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _enroll(admin: httpx.Client, device_id: str) -> str:
    provisioning = admin.post("/api/v1/provisioning-tokens", json={"uses": 1}).json()["token"]
    enrolled = admin.post(
        "/api/v1/devices/enroll", json={"provisioning_token": provisioning, "device_id": device_id, "profile": "rpi4b"}
    )
    assert enrolled.status_code == 201, enrolled.text
    token: str = enrolled.json()["token"]
    return token


def _agent_settings(tiny: TinyPackage, tmp_path: Path, server: ServerHandle, token: str) -> AgentSettings:
    return AgentSettings(
        device_id="dev-1",
        profile="rpi4b",
        data_dir=tmp_path / "agent",
        broker=BrokerSettings(port=server.settings.mqtt.port),
        package=tiny.path,
        trusted_keys=[tiny.public_key],
        telemetry_interval_s=0.2,
        source=SimulatedSourceSettings(fault="bearing_outer", windows_per_s=200),
        updates=UpdateSettings(auth_token=token),
        # every answer of the tiny model is less sure than this: each input is a candidate
        reservoir=ReservoirSettings(min_confidence=1.0, max_count=40),
    )


def test_request_upload_list_and_pull_round_trip(tiny: TinyPackage, server: ServerHandle, tmp_path: Path) -> None:
    with contextlib.ExitStack() as stack:
        admin = stack.enter_context(_admin(server))
        token = _enroll(admin, "dev-1")
        agent = stack.enter_context(serving(_agent_settings(tiny, tmp_path, server, token)))
        wait_until(lambda: agent.reservoir.count == 40, timeout_s=30)
        wait_until(lambda: admin.get("/api/v1/devices/dev-1").json()["model_version"], timeout_s=30)
        out = tmp_path / "extra"
        admin_token = read_token_file(server.settings.resolved_admin_token_file())
        result = CliRunner().invoke(
            app,
            ["samples", "pull", "--device", "dev-1", "--out", str(out), "--server", server.base_url,
             "--token", admin_token, "--max-count", "25", "--timeout", "60"],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert "wrote 25 samples of dev-1" in result.output
        listed = admin.get("/api/v1/devices/dev-1/samples").json()
        assert [(r["state"], r["count"], r["labelled"]) for r in listed] == [("received", 25, 25)]
        assert listed[0]["reasons"] == {"low-confidence": 25}
        (npz,) = out.glob("*.npz")
        samples = decode_samples(npz.read_bytes(), max_bytes=1 << 30)
        assert samples.inputs.shape == (25, 5, 512)
        assert set(samples.labels.tolist()) == {FAULTS.index("bearing_outer")}
        assert samples.label_names == FAULTS
        with (out / LABELS_FILE).open() as fh:
            rows = list(csv.DictReader(fh))
        assert len(rows) == 25
        assert {r["label"] for r in rows} == {"bearing_outer"}
        download = admin.get(f"/api/v1/devices/dev-1/samples/{listed[0]['request_id']}")
        assert download.content == npz.read_bytes()


def test_a_device_cannot_send_samples_for_another_id_nor_too_many_bytes(
    tiny: TinyPackage, server: ServerHandle
) -> None:
    with _admin(server) as admin:
        own = {"Authorization": f"Bearer {_enroll(admin, 'dev-1')}"}
        _enroll(admin, "dev-2")
        request_id = admin.post("/api/v1/devices/dev-2/samples:request", json={"max_count": 5}).json()["request_id"]
        url = f"{server.base_url}/api/v1/devices/dev-2/samples?request={request_id}"
        stolen = httpx.post(url, content=b"", headers=own)
        assert stolen.status_code == 403
        assert "only its own device" in stolen.json()["detail"]
        mine = admin.post("/api/v1/devices/dev-1/samples:request", json={}).json()["request_id"]
        url = f"{server.base_url}/api/v1/devices/dev-1/samples?request={mine}"
        too_big = httpx.post(url, content=b"\0" * (MAX_UPLOAD_BYTES + 1), headers=own, timeout=60)
        assert too_big.status_code == 413
        assert "larger than this server accepts" in too_big.json()["detail"]
        garbage = httpx.post(url, content=b"not an npz", headers=own)
        assert garbage.status_code == 422
        assert "not a readable .npz" in garbage.json()["detail"]
        unknown = admin.post("/api/v1/devices/nobody/samples:request", json={})
        assert unknown.status_code == 404

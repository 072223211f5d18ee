"""Telemetry aggregated per cohort (model version × profile × tag), from devices enrolled with tags."""

from __future__ import annotations

import httpx
import pytest

from edgefleet.topics import TopicKind, topic
from fleet_server import ServerHandle
from tests.server.test_ingest import _device, _online, _publish, _telemetry
from tests.support import wait_until

pytestmark = pytest.mark.integration


def _enroll(admin_client: httpx.Client, tags: list[str], device_ids: list[str]) -> None:
    provisioning = admin_client.post("/api/v1/provisioning-tokens", json={"uses": len(device_ids), "tags": tags})
    assert provisioning.status_code == 201, provisioning.text
    for device_id in device_ids:
        body = {"provisioning_token": provisioning.json()["token"], "device_id": device_id, "profile": "rpi4"}
        assert admin_client.post("/api/v1/devices/enroll", json=body).status_code == 201


def test_telemetry_is_aggregated_per_model_version_profile_and_tag(
    server: ServerHandle, admin_client: httpx.Client
) -> None:
    _enroll(admin_client, ["line-1", "north"], ["c-1", "c-2"])
    _enroll(admin_client, ["line-2"], ["c-3"])
    clients = {device_id: _device(server, device_id) for device_id in ("c-1", "c-2", "c-3")}
    for device_id, client in clients.items():
        _online(client, device_id)
        for seq in range(3):
            _publish(client, topic(device_id, TopicKind.TELEMETRY), _telemetry(device_id, seq, count=10))

    def cohorts() -> dict[str, dict] | None:
        found = {c["tag"]: c for c in admin_client.get("/api/v1/cohorts").json()}
        return found if sum(c["telemetry_messages"] for c in found.values()) == 3 * 3 + 3 * 2 else None

    found = wait_until(cohorts)
    assert found is not None
    assert set(found) == {"line-1", "north", "line-2"}
    line1 = found["line-1"]
    assert (line1["devices"], line1["telemetry_messages"], line1["inferences"]) == (2, 6, 60)
    assert (line1["model_version"], line1["profile"], line1["error_rate"], line1["latency_p95_ms"]) == (
        "1.2.3",
        "rpi4",
        0.0,
        2.0,
    )
    assert found["line-2"]["devices"] == 1
    assert admin_client.get("/api/v1/cohorts", params={"since_s": -1}).status_code == 422
    for client in clients.values():
        client.disconnect()
        client.loop_stop()

"""Devices publish over a real MQTT broker; the server stores it and lists them over HTTP."""

from __future__ import annotations

import socket
import time

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edgefleet.messages import ActiveModel, LatencyStats, StatusV1, TelemetryV1
from edgefleet.topics import TopicKind, topic
from fleet_server import ServerHandle
from tests.server.conftest import admin_headers
from tests.support import wait_until

pytestmark = pytest.mark.integration

MODEL = ActiveModel(name="pump", version="1.2.3", sha256="a" * 64, artifact="pump-int8.onnx")


def _device(server: ServerHandle, device_id: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device_id)
    will = StatusV1(device_id=device_id, seq=0, ts=time.time(), state="offline", agent_version="0.1.0", profile="rpi4")
    client.will_set(topic(device_id, TopicKind.STATUS), will.model_dump_json(), qos=1, retain=True)
    client.connect("127.0.0.1", server.settings.mqtt.port)
    client.loop_start()
    return client


def _publish(client: mqtt.Client, name: str, payload: str | bytes, retain: bool = False) -> None:
    client.publish(name, payload, qos=1, retain=retain).wait_for_publish(5)


def _online(client: mqtt.Client, device_id: str) -> None:
    status = StatusV1(
        device_id=device_id, seq=1, ts=time.time(), state="online", agent_version="0.1.0", profile="rpi4", model=MODEL
    )
    _publish(client, topic(device_id, TopicKind.STATUS), status.model_dump_json(), retain=True)


def _telemetry(device_id: str, seq: int, count: int) -> str:
    return TelemetryV1(
        device_id=device_id,
        seq=seq,
        ts=time.time(),
        interval_s=10,
        model=MODEL,
        inference_count=count,
        latency=LatencyStats(p50_ms=1, p95_ms=2, max_ms=3),
    ).model_dump_json()


def _devices(server: ServerHandle) -> dict[str, dict]:
    return {d["id"]: d for d in httpx.get(f"{server.base_url}/api/v1/devices", headers=admin_headers(server)).json()}


def _metric(server: ServerHandle, line_start: str) -> float:
    for line in httpx.get(f"{server.base_url}/metrics").text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_lists_devices_online_with_their_model_and_summed_inferences(server: ServerHandle) -> None:
    client = _device(server, "pump-1")
    _online(client, "pump-1")
    for seq, count in ((0, 10), (1, 15), (1, 15)):  # the last one is a duplicate delivery
        _publish(client, topic("pump-1", TopicKind.TELEMETRY), _telemetry("pump-1", seq, count))
    wait_until(lambda: _devices(server).get("pump-1", {}).get("telemetry_messages") == 2)
    device = _devices(server)["pump-1"]
    assert device["state"] == "online"
    assert device["model_version"] == "1.2.3"
    assert device["inference_count"] == 25
    assert device["first_seen"].endswith("Z")
    assert device["last_seen"].endswith("Z")
    assert wait_until(lambda: _metric(server, "edgefleet_ingest_duplicates_total") == 1)
    health = httpx.get(f"{server.base_url}/healthz")
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "database": True, "mqtt": True}
    client.disconnect()


@pytest.mark.parametrize(
    ("name", "payload", "reason"),
    [
        ("ef/v1/pump-2/telemetry", _telemetry("someone-else", 0, 1), "device_mismatch"),
        ("ef/v1/pump-2/telemetry", b"{not json", "invalid_payload"),
        ("ef/v1/pump-2/status", _telemetry("pump-2", 0, 1), "wrong_kind"),
        ("ef/v1/pump-2/telemetry", b"x" * (300 * 1024), "oversized"),
    ],
)
def test_refuses_and_counts_bad_messages_without_stopping(
    server: ServerHandle, name: str, payload: str | bytes, reason: str
) -> None:
    client = _device(server, "pump-2")
    _publish(client, name, payload)
    wait_until(lambda: _metric(server, f'edgefleet_ingest_rejected_total{{reason="{reason}"}}') == 1)
    _publish(client, topic("pump-2", TopicKind.TELEMETRY), _telemetry("pump-2", 0, 7))
    assert wait_until(lambda: _devices(server).get("pump-2", {}).get("inference_count") == 7)
    assert "someone-else" not in _devices(server)
    client.disconnect()


def test_a_device_that_drops_off_the_network_turns_offline(server: ServerHandle) -> None:
    client = _device(server, "pump-3")
    _online(client, "pump-3")
    wait_until(lambda: _devices(server).get("pump-3", {}).get("state") == "online")
    # close the socket without DISCONNECT, as a power cut would: the broker publishes the last will
    sock = client.socket()
    client.loop_stop()
    assert isinstance(sock, socket.socket)
    sock.close()
    assert wait_until(lambda: _devices(server)["pump-3"]["state"] == "offline", timeout_s=15)


def test_an_unknown_device_is_a_404_with_a_reason(server: ServerHandle) -> None:
    response = httpx.get(f"{server.base_url}/api/v1/devices/nope", headers=admin_headers(server))
    assert response.status_code == 404
    assert "no device 'nope'" in response.json()["detail"]

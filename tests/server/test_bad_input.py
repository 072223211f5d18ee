"""Bad input over MQTT and HTTP is refused and counted, and the server goes on serving: never a crash, never a 5xx.

test_ingest.py has each MQTT refusal on its own; here a stream of them hits one server before a valid message.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edgefleet.messages import EventKind, EventV1, TelemetryV1
from edgefleet.topics import TopicKind, topic
from fleet_server import ServerHandle
from tests.support import wait_until

pytestmark = pytest.mark.integration

DEVICE = "pump-7"


def _telemetry(device_id: str, seq: int, count: int) -> str:
    return TelemetryV1(
        device_id=device_id, seq=seq, ts=time.time(), interval_s=10, inference_count=count
    ).model_dump_json()


def _unknown_schema() -> str:
    message = json.loads(_telemetry(DEVICE, 0, 1))
    return json.dumps({**message, "schema": "ef.telemetry.v9"})


def _event_with_nul() -> str:
    return EventV1(
        device_id=DEVICE, seq=0, ts=time.time(), kind=EventKind.ERROR, detail="bad\x00byte"
    ).model_dump_json()


def _rejected(server: ServerHandle) -> dict[str, float]:
    prefix = 'edgefleet_ingest_rejected_total{reason="'
    counts = {}
    for line in httpx.get(f"{server.base_url}/metrics").text.splitlines():
        if line.startswith(prefix):
            reason, value = line.removeprefix(prefix).split('"} ')
            counts[reason] = float(value)
    return counts


@pytest.fixture
def raw_client(server: ServerHandle) -> Iterator[mqtt.Client]:
    """A plain paho client on the server's embedded broker: it publishes whatever it is given, on any topic."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="not-an-agent")
    client.connect("127.0.0.1", server.settings.mqtt.port)
    client.loop_start()
    yield client
    client.disconnect()
    client.loop_stop()


def test_bad_mqtt_messages_are_refused_and_counted_and_ingest_goes_on(
    server: ServerHandle, admin_client: httpx.Client, raw_client: mqtt.Client
) -> None:
    telemetry = topic(DEVICE, TopicKind.TELEMETRY)
    bad: list[tuple[str, str | bytes]] = [
        (telemetry, b'{"schema": "ef.telemetry.v1", "device_id": '),  # malformed JSON: invalid_payload
        (telemetry, _unknown_schema()),  # a schema this server does not read: invalid_payload
        (telemetry, _telemetry("someone-else", 0, 1)),  # forged: device_mismatch
        (telemetry, b"{" + b" " * (server.settings.max_payload_bytes + 1) + b"}"),  # oversized
        ("ef/v1/Not_A_Device/telemetry", _telemetry(DEVICE, 0, 1)),  # matches the subscription, no device id
        (topic(DEVICE, TopicKind.EVENTS), _event_with_nul()),  # PostgreSQL cannot store it: nul_character
        ("plant/7/pressure", b"{not json"),  # not an edgefleet topic: ingest never subscribes to it
    ]
    for name, payload in bad:
        raw_client.publish(name, payload, qos=1).wait_for_publish(5)
    raw_client.publish(telemetry, _telemetry(DEVICE, 0, 7), qos=1).wait_for_publish(5)

    # one client's messages arrive in order, so once the valid one is stored every bad one was judged
    assert wait_until(lambda: admin_client.get(f"/api/v1/devices/{DEVICE}").json().get("inference_count") == 7)
    assert _rejected(server) == {
        "invalid_payload": 2,
        "device_mismatch": 1,
        "oversized": 1,
        "unknown_topic": 1,
        "nul_character": 1,
    }
    assert "someone-else" not in {d["id"] for d in admin_client.get("/api/v1/devices").json()}
    assert admin_client.get("/healthz").json() == {"status": "ok", "database": True, "mqtt": True}


@pytest.mark.parametrize("path", ["/api/v1/rollouts", "/api/v1/provisioning-tokens"])
def test_malformed_json_body_is_a_422_not_a_500(admin_client: httpx.Client, path: str) -> None:
    response = admin_client.post(path, content=b'{"package": ', headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/v1/tokens", {"name": "ci\x00", "role": "viewer"}),
        ("POST", "/api/v1/provisioning-tokens", {"profile": "rpi\x004"}),
        ("GET", "/api/v1/rollouts/r%00", None),
        ("GET", "/api/v1/devices/pump%00", None),
    ],
)
def test_a_nul_character_in_a_request_is_not_a_server_error(
    admin_client: httpx.Client, method: str, path: str, body: dict[str, object] | None
) -> None:
    # psycopg refuses NUL in text ("PostgreSQL text fields cannot contain NUL (0x00) bytes"): the app answers 422
    response = admin_client.request(method, path, json=body)
    assert response.status_code < 500

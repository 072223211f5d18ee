"""Fuzz targets shared by the suite (small budgets) and ``make bench`` (large ones): every MQTT payload parser.

Each target takes one input and raises AssertionError, or any unexpected exception, when the code under test
misbehaves; refusing the input is fine, crashing is not.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Final

from hypothesis import strategies as st
from paho.mqtt.client import MQTTMessage
from prometheus_client import CollectorRegistry
from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from edge_agent.mqtt import Link
from edge_agent.outbox import Outbox
from edge_agent.sequence import Sequences
from edge_agent.settings import BrokerSettings
from edgefleet.messages import (
    ActiveModel,
    AssignCommand,
    CommandV1,
    EventKind,
    EventV1,
    RollbackCommand,
    StatusV1,
    TelemetryV1,
    parse_message,
)
from fleet_server.ingest import Ingest, IngestMetrics

__all__ = [
    "DEVICE",
    "CommandTarget",
    "IngestTarget",
    "ingest_topics",
    "mqtt_inputs",
    "parse_target",
    "valid_payloads",
]

DEVICE: Final = "fuzz-1"
_MODEL = ActiveModel(name="pump", version="1.0.0", sha256="0" * 64, artifact="model.onnx")


def valid_payloads() -> list[dict[str, Any]]:
    """One valid message of every kind a topic carries, as JSON objects ready to mutate."""
    messages = [
        StatusV1(device_id=DEVICE, seq=1, ts=1.0, state="online", agent_version="0.1.0", profile="rpi4b", model=_MODEL),
        TelemetryV1(device_id=DEVICE, seq=2, ts=2.0, interval_s=10, inference_count=5, class_counts=[3, 2]),
        EventV1(device_id=DEVICE, seq=3, ts=3.0, kind=EventKind.ERROR, detail="x"),
        CommandV1(
            device_id=DEVICE,
            seq=4,
            ts=4.0,
            command=AssignCommand(
                rollout_id="r-1", package="pump@2.0.0", url="http://h/p", sha256="1" * 64, size_bytes=10, deadline_ts=9
            ),
        ),
        CommandV1(device_id=DEVICE, seq=5, ts=5.0, command=RollbackCommand(reason="bad")),
    ]
    return [json.loads(m.model_dump_json(by_alias=True)) for m in messages]


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    """A valid message with some fields replaced, removed or added, then maybe its bytes cut or flipped."""
    message = draw(st.sampled_from(valid_payloads()))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["replace", "drop", "add", "nest"]))
        key = draw(st.sampled_from(sorted(message)))
        if op == "replace":
            message[key] = draw(_json_values)
        elif op == "drop":
            message.pop(key)
        elif op == "add":
            message[draw(st.text(max_size=8))] = draw(_json_values)
        elif isinstance(message.get(key), dict):
            inner = message[key]
            if inner:
                inner[draw(st.sampled_from(sorted(inner)))] = draw(_json_values)
        if not message:
            break
    raw = json.dumps(message, allow_nan=True).encode()
    cut = draw(st.sampled_from(["none", "truncate", "flip"]))
    if cut == "truncate" and raw:
        raw = raw[: draw(st.integers(0, len(raw) - 1))]
    elif cut == "flip" and raw:
        at = draw(st.integers(0, len(raw) - 1))
        raw = raw[:at] + bytes([raw[at] ^ draw(st.integers(1, 255))]) + raw[at + 1 :]
    return raw


def mqtt_inputs() -> st.SearchStrategy[bytes]:
    """Payloads: arbitrary bytes, and valid messages of every kind mutated."""
    return st.one_of(st.binary(max_size=512), _mutated())


def ingest_topics() -> st.SearchStrategy[str]:
    """Topics ingest may see: the device's own of every kind, another device's, and names that are no topic of ours."""
    kinds = ["status", "telemetry", "events", "commands"]
    known = [f"ef/v1/{device}/{kind}" for device in (DEVICE, "other-2") for kind in kinds]
    return st.one_of(st.sampled_from(known), st.text(max_size=40))


def parse_target(payload: bytes) -> None:
    """``parse_message`` returns a message or raises pydantic's ValidationError, nothing else."""
    try:
        message = parse_message(payload)
    except ValidationError:
        return
    assert isinstance(message, StatusV1 | TelemetryV1 | EventV1 | CommandV1)


class CommandTarget:
    """The agent's command callback (what paho calls on the commands topic), on a real Link that never connects."""

    def __init__(self) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="edgefleet-fuzz-")
        root = Path(self._folder.name)
        outbox = Outbox(root / "outbox.db", max_messages=100, max_bytes=1 << 20)
        self.link = Link(DEVICE, "rpi4b", BrokerSettings(), Sequences(root / "seq.json"), outbox)

    def __call__(self, payload: bytes) -> None:
        """Deliver ``payload``; only a valid command for this device may come out, and nothing may raise."""
        message = MQTTMessage(topic=f"ef/v1/{DEVICE}/commands".encode())
        message.payload = payload
        self.link._on_message(self.link._client, None, message)
        for command in self.link.commands():
            assert isinstance(command, CommandV1)
            assert command.device_id == DEVICE

    def close(self) -> None:
        self._folder.cleanup()


class IngestTarget:
    """The server's ingest refusal path on paho's thread: validate and enqueue, or count a refusal; never raise."""

    _shared: IngestTarget | None = None

    def __init__(self) -> None:
        self.ingest = Ingest(
            sessionmaker[Session](),
            IngestMetrics(CollectorRegistry()),
            host="127.0.0.1",
            port=1,
            max_payload_bytes=4096,
            queue_size=1_000_000,
        )
        self.accepted = 0

    @classmethod
    def shared(cls) -> IngestTarget:
        """One target per process (each Ingest builds a paho client; nothing of it is kept between inputs)."""
        if cls._shared is None:
            cls._shared = cls()
        return cls._shared

    def __call__(self, topic: str, payload: bytes) -> None:
        message = MQTTMessage(topic=topic.encode())
        message.payload = payload
        reason = self.ingest._refusal(message)
        if reason is None:
            self.accepted += 1
            parsed = parse_message(payload)
            assert not isinstance(parsed, CommandV1)
            assert topic.split("/")[2] == parsed.device_id

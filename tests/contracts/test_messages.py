"""MQTT messages round-trip through JSON, refuse what breaks the contract, and topics parse both ways."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from edgefleet.messages import (
    AssignCommand,
    CommandV1,
    EventKind,
    EventV1,
    LatencyStats,
    StatusV1,
    TelemetryV1,
    parse_message,
)
from edgefleet.topics import TopicKind, parse_topic, subscription, topic

pytestmark = pytest.mark.unit

device_ids = st.from_regex(r"\A[a-z0-9](?:[a-z0-9-]{0,20}[a-z0-9])?\Z")
counts = st.integers(0, 2**31)


@given(
    device_id=device_ids,
    seq=counts,
    inferences=counts,
    p50=st.floats(0, 1e4),
    classes=st.lists(counts, max_size=8),
    sketch=st.dictionaries(st.text(min_size=1, max_size=8), st.lists(counts, max_size=10), max_size=4),
)
def test_telemetry_round_trips_through_json(
    device_id: str, seq: int, inferences: int, p50: float, classes: list[int], sketch: dict[str, list[int]]
) -> None:
    message = TelemetryV1(
        device_id=device_id,
        seq=seq,
        ts=1.7e9,
        interval_s=10,
        inference_count=inferences,
        latency=LatencyStats(p50_ms=p50, p95_ms=p50, max_ms=p50),
        class_counts=classes,
        sketches=sketch,
    )
    assert parse_message(message.model_dump_json()) == message


def test_every_kind_is_told_apart_by_its_schema() -> None:
    status = StatusV1(device_id="d1", seq=0, ts=0, state="online", agent_version="0.1.0", profile="rpi4")
    event = EventV1(device_id="d1", seq=1, ts=0, kind=EventKind.SMOKE_TESTED)
    command = CommandV1(
        device_id="d1",
        seq=2,
        ts=0,
        command=AssignCommand(
            rollout_id="r1", package="m@1.0.0", url="http://x/p", sha256="0" * 64, size_bytes=1, deadline_ts=1
        ),
    )
    for message in (status, event, command):
        assert type(parse_message(message.model_dump_json())) is type(message)
    assert '"schema":"ef.status.v1"' in status.model_dump_json()


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b'{"schema":"ef.status.v9","device_id":"d1","seq":0,"ts":0}',
        b'{"schema":"ef.status.v1","device_id":"d1/+","seq":0,"ts":0,"state":"online","agent_version":"0.1.0","profile":"x"}',
        b'{"schema":"ef.status.v1","device_id":"d1","seq":-1,"ts":0,"state":"online","agent_version":"0.1.0","profile":"x"}',
        b'{"schema":"ef.status.v1","device_id":"d1","seq":0,"ts":0,"state":"online","agent_version":"0.1.0","profile":"x","extra":1}',
    ],
)
def test_refuses_payloads_that_break_the_contract(payload: bytes) -> None:
    with pytest.raises(ValidationError):
        parse_message(payload)


def test_topics_name_one_device_and_refuse_wildcards() -> None:
    assert topic("pump-7", TopicKind.TELEMETRY) == "ef/v1/pump-7/telemetry"
    assert parse_topic("ef/v1/pump-7/telemetry") == ("pump-7", TopicKind.TELEMETRY)
    assert parse_topic("ef/v1/+/telemetry") is None
    assert parse_topic("ef/v1/a/b/telemetry") is None
    assert parse_topic("ef/v1/pump-7/telemetry\n") is None
    assert subscription(TopicKind.STATUS, share_group="fleet") == "$share/fleet/ef/v1/+/status"

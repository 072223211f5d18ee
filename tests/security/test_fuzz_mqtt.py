"""Hypothesis over every MQTT payload parser: ``parse_message`` for each kind, the agent's command callback and
ingest's refusal path, fed arbitrary bytes and mutated valid messages. ``make bench`` runs the same targets with
a larger budget (benchmarks/fuzz.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings

from edgefleet.messages import parse_message
from tests.security.fuzzing import (
    CommandTarget,
    IngestTarget,
    ingest_topics,
    mqtt_inputs,
    parse_target,
    valid_payloads,
)

pytestmark = pytest.mark.unit

_SUITE = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def test_the_unmutated_seeds_are_valid_messages() -> None:
    # the mutations start from valid messages of every kind, or they would only ever test refusals
    kinds = {parse_message(json.dumps(p)).schema_ for p in valid_payloads()}
    assert kinds == {"ef.status.v1", "ef.telemetry.v1", "ef.event.v1", "ef.command.v1"}


@_SUITE
@given(payload=mqtt_inputs())
def test_parse_message_returns_a_message_or_a_validation_error(payload: bytes) -> None:
    parse_target(payload)


@pytest.fixture(scope="module")
def command_target() -> Iterator[CommandTarget]:
    target = CommandTarget()
    yield target
    target.close()


@_SUITE
@given(payload=mqtt_inputs())
def test_the_agent_takes_only_valid_commands_for_itself(command_target: CommandTarget, payload: bytes) -> None:
    command_target(payload)


@_SUITE
@given(topic=ingest_topics(), payload=mqtt_inputs())
def test_ingest_refuses_bad_payloads_without_raising(topic: str, payload: bytes) -> None:
    IngestTarget.shared()(topic, payload)

"""MQTT topic names (``ef/v1/{device}/{kind}``) and the patterns the server subscribes to."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Final

__all__ = ["PREFIX", "TopicKind", "parse_topic", "subscription", "topic"]

PREFIX: Final = "ef/v1"
_TOPIC = re.compile(r"^ef/v1/([a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?)/(status|telemetry|events|commands)$")


class TopicKind(StrEnum):
    STATUS = "status"
    TELEMETRY = "telemetry"
    EVENTS = "events"
    COMMANDS = "commands"


def topic(device_id: str, kind: TopicKind) -> str:
    """The topic of one device's messages of one kind."""
    return f"{PREFIX}/{device_id}/{kind}"


def subscription(kind: TopicKind, *, share_group: str | None = None) -> str:
    """The pattern for every device's messages of one kind, optionally as an MQTT 5 shared subscription."""
    pattern = f"{PREFIX}/+/{kind}"
    return f"$share/{share_group}/{pattern}" if share_group else pattern


def parse_topic(name: str) -> tuple[str, TopicKind] | None:
    """The device id and kind of a topic, or None when it is not an edgefleet device topic."""
    match = _TOPIC.fullmatch(name)
    if match is None:
        return None
    return match.group(1), TopicKind(match.group(2))

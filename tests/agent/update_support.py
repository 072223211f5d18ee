"""What the update tests share: a serving agent in a thread, rollout commands over MQTT, the device's events."""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from edge_agent import Agent, AgentSettings
from edgefleet.messages import AssignCommand, CommandV1, EventV1, RollbackCommand
from edgefleet.topics import TopicKind, topic
from tests.agent.conftest import Subscriber
from tests.support import wait_until
from tests.updates.conftest import FileServer

FINAL = {"committed", "rolled-back", "failed"}


@dataclass
class Commander:
    """Publishes commands to one device on the test broker, numbered like the server numbers them."""

    port: int
    device_id: str = "dev-1"
    seq: int = 0

    def send(self, command: AssignCommand | RollbackCommand) -> None:
        import paho.mqtt.publish as publish

        self.seq += 1
        message = CommandV1(device_id=self.device_id, seq=self.seq, ts=time.time(), command=command)
        publish.single(
            topic(self.device_id, TopicKind.COMMANDS),
            message.model_dump_json(by_alias=True),
            qos=1,
            hostname="127.0.0.1",
            port=self.port,
        )

    def assign(self, file: Path, url: str, *, rollout: str, deadline_s: float = 30.0, **changes: object) -> None:
        """Assign the package ``file`` (its name@version read from the file name tiny-pump-X.Y.Z-variant.efpkg)."""
        version = file.name.removeprefix("tiny-pump-").split("-")[0]
        data = file.read_bytes()
        command = AssignCommand(
            rollout_id=rollout,
            package=f"tiny-pump@{version}",
            url=url,
            sha256=hashlib.sha256(data).hexdigest(),
            size_bytes=len(data),
            deadline_ts=time.time() + deadline_s,
        )
        self.send(command.model_copy(update=changes))


def events(subscriber: Subscriber, device_id: str = "dev-1") -> list[EventV1]:
    return [EventV1.model_validate_json(p) for p, _ in subscriber.on(topic(device_id, TopicKind.EVENTS))]


def outcome(subscriber: Subscriber, rollout: str, timeout_s: float = 30.0) -> EventV1:
    """The event that ends ``rollout`` on the device: committed, rolled back or failed."""

    def final() -> EventV1 | None:
        done = [e for e in events(subscriber) if e.rollout_id == rollout and e.kind in FINAL]
        return done[-1] if done else None

    found = wait_until(final, timeout_s=timeout_s)
    assert found is not None
    return found


def kinds(subscriber: Subscriber, rollout: str) -> list[str]:
    return [e.kind.value for e in events(subscriber) if e.rollout_id == rollout]


def running(agent: Agent) -> tuple[str, str]:
    """The version and slot the agent serves."""
    model = agent.current()
    assert model is not None
    return model.active.version, model.active.slot


def pointer(data_dir: Path) -> dict[str, str]:
    loaded: dict[str, str] = json.loads((data_dir / "slots" / "pointer.json").read_text())
    return loaded


@contextlib.contextmanager
def serving(settings: AgentSettings) -> Iterator[Agent]:
    """An agent started and serving its source on a thread, for the ``with`` block."""
    agent = Agent(settings)
    agent.start()
    thread = threading.Thread(target=agent.run, name="serving", daemon=True)
    thread.start()
    try:
        yield agent
    finally:
        agent.stop()
        thread.join(10)
        agent.close()


@contextlib.contextmanager
def files(content: bytes) -> Iterator[FileServer]:
    server = FileServer(content)
    server.start()
    try:
        yield server
    finally:
        server.stop()

"""Fixtures of the agent's tests: a tiny signed sensor classifier package, a real amqtt broker, a raw subscriber."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_agent import AgentSettings, BrokerSettings, SimulatedSourceSettings
from tests.agent.tiny import CONFIDENCE_EDGES, TinyPackage, build_tiny_package
from tests.support import free_port, wait_until

__all__ = ["CONFIDENCE_EDGES", "TinyPackage", "agent_settings", "running_amqtt"]


@pytest.fixture(scope="session")
def tiny_package(tmp_path_factory: pytest.TempPathFactory) -> TinyPackage:
    """A signed package of a tiny ONNX classifier over the simulator's channels, labels FAULTS, with a reference
    profile, test vectors, and two artifacts: fp32 and one labelled int8 (the agent must pick that one)."""
    return build_tiny_package(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def mqtt_broker() -> Iterator[int]:
    """A real amqtt 0.12 broker on a free port, on its own event loop in a thread; yields the port."""
    import logging

    for name in ("amqtt", "transitions"):
        logging.getLogger(name).setLevel(logging.WARNING)
    port = free_port()
    # amqtt 0.11+ takes plugins as a dict of class path → options
    config: dict[str, Any] = {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }
    with running_amqtt(config, "test-amqtt"):
        yield port


@contextlib.contextmanager
def running_amqtt(config: dict[str, Any], name: str) -> Iterator[None]:
    """An amqtt broker with ``config`` on its own event loop in a thread, for the ``with`` block."""
    from amqtt.broker import Broker

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name=name, daemon=True)
    thread.start()

    async def _start() -> Broker:
        broker = Broker(config)
        await broker.start()
        return broker

    broker = asyncio.run_coroutine_threadsafe(_start(), loop).result(10)
    try:
        yield
    finally:
        asyncio.run_coroutine_threadsafe(broker.shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
    loop.close()


class Subscriber:
    """A raw paho client that keeps every message it receives: (topic, payload, retained)."""

    def __init__(self, port: int, pattern: str) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:12]}")
        subscribed = threading.Event()
        self._client.on_message = self._keep
        self._client.on_subscribe = lambda *_args: subscribed.set()
        self._client.connect("127.0.0.1", port)
        self._client.subscribe(pattern, qos=1)
        self._client.loop_start()
        # live messages published from now on reach this subscriber
        assert subscribed.wait(10), "the broker did not acknowledge the subscription"

    def _keep(self, _client: object, _userdata: object, message: Any) -> None:
        with self._lock:
            self.messages.append((message.topic, bytes(message.payload), bool(message.retain)))

    def on(self, topic: str) -> list[tuple[bytes, bool]]:
        with self._lock:
            return [(p, r) for t, p, r in self.messages if t == topic]

    def wait_for(self, topic: str, count: int = 1, timeout_s: float = 10.0) -> list[tuple[bytes, bool]]:
        """The messages on ``topic`` once at least ``count`` have arrived."""
        wait_until(lambda: len(self.on(topic)) >= count, timeout_s=timeout_s)
        return self.on(topic)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@pytest.fixture
def subscribe(mqtt_broker: int) -> Iterator[Any]:
    """``subscribe(pattern)`` makes a Subscriber on the test broker; each is closed after the test."""
    made: list[Subscriber] = []

    def _make(pattern: str) -> Subscriber:
        made.append(Subscriber(mqtt_broker, pattern))
        return made[-1]

    yield _make
    for subscriber in made:
        subscriber.close()


def agent_settings(tiny: TinyPackage, data_dir: Path, port: int, **changes: object) -> AgentSettings:
    """Settings of device ``dev-1`` (profile rpi4b) running ``tiny`` against the broker on ``port``."""
    base: dict[str, object] = {
        "device_id": "dev-1",
        "profile": "rpi4b",
        "data_dir": data_dir,
        "broker": BrokerSettings(port=port),
        "package": tiny.path,
        "trusted_keys": [tiny.public_key],
        "telemetry_interval_s": 0.05,
        "source": SimulatedSourceSettings(fault="bearing_outer", windows_per_s=0),
    }
    return AgentSettings.model_validate(base | changes)

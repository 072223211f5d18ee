"""Fixtures shared across the suite: one trained, exported and signed package, and a real MQTT broker."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pytest

# `make test` runs `pytest -n 2`: one worker runs the tests that mostly wait (the soak on its fleet, the server's on
# their servers and brokers: about a core's third), while the other runs every other test in order, as without
# xdist (CPU-bound tests two at a time on two cores make timing-sensitive ones flaky: beside the rest, the demo's
# training made its own rollout fail its latency gate). A scheduler of its own, because xdist_group markers do not
# work with pytest 9.2 (xdist sets item._nodeid, which pytest no longer reads)
_BESIDE: Final = ("tests/soak/", "tests/server/")


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    from xdist.scheduler import LoadScopeScheduling

    class _BesideTheRest(LoadScopeScheduling):  # type: ignore[misc]  # xdist has no type hints
        def _split_scope(self, nodeid: str) -> str:
            return "beside" if nodeid.startswith(_BESIDE) else "the rest"

    return _BesideTheRest(config, log)


@dataclass(frozen=True)
class Pipeline:
    run: Path
    export: Path
    private_key: Path
    public_key: Path
    package: Path


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    """A small sensor model trained, exported (fp32, int8) and packaged once for the whole session."""
    from edgefleet.signing import generate_keys
    from export import ExportOptions, export_run
    from export.packaging import package_export
    from train import PdmConfig, train_pdm

    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    root = tmp_path_factory.mktemp("pipeline")
    train_pdm(PdmConfig(), root / "run")
    export_run(root / "run", root / "export", ExportOptions(latency_runs=20))
    private_key, public_key = generate_keys(root / "keys")
    package = package_export(root / "export", key=private_key, version="1.0.0", out=root / "pump-1.0.0.efpkg")
    return Pipeline(root / "run", root / "export", private_key, public_key, package)


@pytest.fixture
def broker() -> Iterator[int]:
    """A real embedded amqtt broker on a free port, on its own event loop thread; yields the port."""
    import asyncio
    import threading

    from fleet_server.broker import EmbeddedBroker
    from tests.support import free_port

    port = free_port()
    embedded = EmbeddedBroker("127.0.0.1", port)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="test-broker", daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(embedded.start(), loop).result(10)
    yield port
    asyncio.run_coroutine_threadsafe(embedded.stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


class Recorder:
    """A raw MQTT subscriber that keeps every message it receives, by topic."""

    def __init__(self, port: int, pattern: str) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.messages: list[tuple[str, bytes, bool]] = []
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"recorder-{port}")
        self._client.on_message = lambda _c, _u, m: self.messages.append((m.topic, bytes(m.payload), m.retain))
        self._client.connect("127.0.0.1", port)
        self._client.subscribe(pattern, qos=1)
        self._client.loop_start()

    def payloads(self, topic_name: str) -> list[bytes]:
        return [p for t, p, _ in self.messages if t == topic_name]

    def payloads_when(self, topic_name: str, count: int) -> list[bytes]:
        """The payloads on ``topic_name`` once at least ``count`` have arrived."""
        from tests.support import wait_until

        wait_until(lambda: len(self.payloads(topic_name)) >= count)
        return self.payloads(topic_name)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

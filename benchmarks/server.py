"""The fleet server's throughput, each against a baseline measured in the same run.

- ingest: telemetry messages per second that ``Ingest`` validates and stores, against what the same Mosquitto
  delivers to a bare paho subscriber, from the same publishers sending the same messages;
- rollout: the time for a rollout across 1,000 simulated devices through four waves with no bake time, from
  ``POST /api/v1/rollouts`` to ``completed``. The devices are simulated by one MQTT client that answers every
  assignment with the device's final ``committed`` event, as an agent does after its update.
"""

from __future__ import annotations

import contextlib
import itertools
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, func, select

from benchmarks._services import free_port, mosquitto, wait_for
from edgefleet.messages import CommandV1, EventKind, EventV1
from edgefleet.topics import TopicKind, subscription, topic
from fleet_server import MqttSettings, ServerHandle, ServerSettings
from fleet_server.auth import read_token_file
from fleet_server.db import AuditRow, Device, Rollout, Telemetry, make_engine, make_session_factory, upgrade
from fleet_server.db.models import Package
from fleet_server.ingest import Ingest, IngestMetrics

__all__ = ["run"]

_REPEATS: Final = 3
_DEVICES: Final = 200
_PER_DEVICE: Final = 50  # telemetry messages per device: N = 10,000
_PUBLISHERS: Final = 4
_FLEET: Final = 1000
_WAVES: Final = [{"devices": 1}, {"percent": 10}, {"percent": 50}, {"percent": 100}]

# one publisher process: one paho client sending, at QoS 1, every seq of its devices; the JSON is built once per
# device and only the seq changes
_PUBLISHER: Final = """
import sys, threading, time
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from edgefleet.messages import ActiveModel, LatencyStats, SystemStats, TelemetryV1
from edgefleet.topics import TopicKind, topic
port, first, count, per_device = (int(v) for v in sys.argv[1:5])
model = ActiveModel(name="pump", version="1.2.3", sha256="a" * 64, artifact="pump-int8.onnx")
devices = [f"bench-{n:04d}" for n in range(first, first + count)]
templates = {
    d: TelemetryV1(
        device_id=d, seq=987654321, ts=time.time(), interval_s=10, model=model, inference_count=1000,
        latency=LatencyStats(p50_ms=1.2, p95_ms=2.5, max_ms=4.0), class_counts=[900, 80, 20],
        system=SystemStats(cpu_percent=12.5, rss_bytes=80_000_000),
    ).model_dump_json(by_alias=True)
    for d in devices
}
messages = [(topic(d, TopicKind.TELEMETRY), templates[d].replace("987654321", str(s))) for s in range(per_device) for d in devices]
connected = threading.Event()
client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-publisher-{first}")
client.on_connect = lambda *_: connected.set()
client.connect("127.0.0.1", port)
client.loop_start()
connected.wait(10)
print("ready", flush=True)
sys.stdin.readline()
sent = [client.publish(t, p, qos=1) for t, p in messages]
for info in sent:
    info.wait_for_publish(120)
client.disconnect()
client.loop_stop()
"""


@contextlib.contextmanager
def _publishers(port: int) -> Iterator[Callable[[], float]]:
    """Publisher processes connected and ready; yields ``go``, which starts them all and returns the start time."""
    share = _DEVICES // _PUBLISHERS
    arguments = [[str(port), str(i * share), str(share), str(_PER_DEVICE)] for i in range(_PUBLISHERS)]
    command = [sys.executable, "-c", _PUBLISHER]
    processes = [
        subprocess.Popen([*command, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for args in arguments
    ]
    try:
        for process in processes:
            if process.stdout is None or process.stdout.readline().strip() != "ready":
                raise RuntimeError("a publisher process failed before it was ready; its error is above")

        def go() -> float:
            started = time.perf_counter()
            for process in processes:
                assert process.stdin is not None
                process.stdin.write("go\n")
                process.stdin.flush()
            return started

        yield go
        for process in processes:
            process.wait(120)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def _bare_rate(port: int) -> float:
    """Messages per second a bare paho subscriber (QoS 1, counting only) receives of N published."""
    total = _DEVICES * _PER_DEVICE
    received = [0]
    done = threading.Event()
    finished = [0.0]

    def on_message(*_args: object) -> None:
        received[0] += 1
        if received[0] == total:
            finished[0] = time.perf_counter()
            done.set()

    subscribed = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-bare")
    client.on_message = on_message
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_connect = lambda c, *_: c.subscribe(subscription(TopicKind.TELEMETRY), qos=1)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        subscribed.wait(10)
        with _publishers(port) as go:
            started = go()
            if not done.wait(120):
                raise TimeoutError(f"the bare subscriber received {received[0]} of {total} messages")
    finally:
        client.disconnect()
        client.loop_stop()
    return total / (finished[0] - started)


def _count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(Telemetry)).scalar_one())


def _stored(registry: CollectorRegistry) -> float:
    return registry.get_sample_value("edgefleet_ingest_messages_total", {"kind": "telemetry"}) or 0.0


def _ingest_rate(port: int, database_url: str) -> float:
    """Telemetry rows per second one ``Ingest`` stores of N published, until the last is stored."""
    total = _DEVICES * _PER_DEVICE
    engine = make_engine(database_url)
    upgrade(engine)
    registry = CollectorRegistry()
    ingest = Ingest(
        make_session_factory(engine),
        IngestMetrics(registry),
        host="127.0.0.1",
        port=port,
        max_payload_bytes=256 * 1024,
        queue_size=10_000,
        # as the server runs it against Mosquitto: a persistent session, each report acknowledged once committed
        client_id=f"bench-ingest-{secrets.token_hex(3)}",
        durable_acks=True,
    )
    ingest.start()
    try:
        with _publishers(port) as go:
            started = go()
            # the counter moves once a batch is committed; polling the table instead would take the GIL from ingest
            wait_for(lambda: _stored(registry) >= total, timeout_s=300, interval_s=0.05)
            finished = time.perf_counter()
        if _count(engine) != total:
            raise RuntimeError(
                f"ingest counted {total} telemetry messages stored, but the table holds {_count(engine)}"
            )
        rejected = registry.get_sample_value("edgefleet_ingest_rejected_total", {"reason": "queue_full"})
        if rejected:
            raise RuntimeError(f"ingest refused {rejected:.0f} messages with a full queue")
    finally:
        ingest.stop()
        engine.dispose()
    return total / (finished - started)


def _ingest(tmp: Path) -> tuple[float, float]:
    bare, stored = [], []
    # Mosquitto's default drops QoS 1 messages past 1,000 queued for a subscriber; a burst from fast
    # publishers passes that even for a bare subscriber, and this measures throughput, not the drop policy
    with mosquitto(tmp, "max_queued_messages 0", "max_inflight_messages 0") as port:
        for repeat in range(_REPEATS):
            bare.append(_bare_rate(port))
            stored.append(_ingest_rate(port, f"sqlite:///{tmp / f'ingest-{repeat}.db'}"))
    return statistics.median(bare), statistics.median(stored)


@dataclass(frozen=True, slots=True)
class _RolloutTimes:
    total_s: float
    waves_s: list[float]


class _SimulatedDevices:
    """One MQTT client for the whole fleet: every assignment is answered with that device's ``committed`` event."""

    def __init__(self, port: int) -> None:
        self._seqs: dict[str, int] = {}
        subscribed = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-devices")
        self._client.on_message = self._on_message
        self._client.on_subscribe = lambda *_: subscribed.set()
        self._client.on_connect = lambda c, *_: c.subscribe(subscription(TopicKind.COMMANDS), qos=1)
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()
        subscribed.wait(10)

    def _on_message(self, _client: mqtt.Client, _userdata: object, msg: mqtt.MQTTMessage) -> None:
        command = CommandV1.model_validate_json(msg.payload)
        if command.command.action != "assign":
            return
        seq = self._seqs.get(command.device_id, 0)
        self._seqs[command.device_id] = seq + 1
        event = EventV1(
            device_id=command.device_id,
            seq=seq,
            ts=time.time(),
            kind=EventKind.COMMITTED,
            rollout_id=command.command.rollout_id,
            package=command.command.package,
        )
        # publish without waiting: paho sends it from its own thread
        self._client.publish(topic(command.device_id, TopicKind.EVENTS), event.model_dump_json(by_alias=True), qos=1)

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def _seed(engine: Engine) -> None:
    """The fleet's device rows, all on pump 1.0.0, and pump 2.0.0 in the registry (rows only: no file is served)."""
    now = datetime.now(UTC)
    with make_session_factory(engine).begin() as session:
        session.add(
            Package(
                name="pump", version="2.0.0", file_sha256="b" * 64, manifest_sha256="c" * 64, size_bytes=1 << 20,
                key_id="0" * 16, manifest={}, uploaded_at=now,
            )
        )  # fmt: skip
        session.add_all(
            Device(
                id=f"dev-{n:04d}", profile="rpi4b", agent_version="0.1.0", state="online", model_name="pump",
                model_version="1.0.0", status_seq=0, tags=["line-1"], first_seen=now, last_seen=now,
            )
            for n in range(_FLEET)
        )  # fmt: skip


def _rollout_once(tmp: Path) -> _RolloutTimes:
    settings = ServerSettings(
        data_dir=tmp / "server", http_port=free_port(), mqtt=MqttSettings(port=free_port()), rollout_tick_s=0.05
    )
    server = ServerHandle(settings)
    server.start()
    engine = make_engine(settings.resolved_database_url())
    devices = _SimulatedDevices(settings.mqtt.port)
    try:
        _seed(engine)
        token = read_token_file(settings.resolved_admin_token_file())
        spec = {"package": "pump@2.0.0", "waves": _WAVES, "gates": {"bake_s": 0, "min_reported": 1.0}}
        with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}) as http:
            started = time.perf_counter()
            created = http.post("/api/v1/rollouts", json=spec)
            created.raise_for_status()
            rollout_id = created.json()["id"]

            def state() -> str | None:
                with engine.connect() as connection:
                    found = connection.execute(select(Rollout.state).where(Rollout.id == rollout_id)).scalar_one()
                return found if found != "running" else None

            final = wait_for(state, timeout_s=600, interval_s=0.02)
            total_s = time.perf_counter() - started
        if final != "completed":
            raise RuntimeError(f"the rollout ended {final}, not completed")
        with engine.connect() as connection:
            at = [row.at for row in connection.execute(select(AuditRow.at).order_by(AuditRow.id))]
        waves_s = [(b - a).total_seconds() for a, b in itertools.pairwise(at)]
    finally:
        devices.stop()
        server.stop()
        engine.dispose()
    return _RolloutTimes(total_s, waves_s)


def _rollouts(tmp: Path) -> list[_RolloutTimes]:
    return [_rollout_once(tmp / f"rollout-{repeat}") for repeat in range(_REPEATS)]


def run() -> str:
    """Measure, and return the Markdown section for BENCHMARKS.md."""
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        bare, stored = _ingest(tmp)
        rollouts = _rollouts(tmp)
    total_s = statistics.median(r.total_s for r in rollouts)
    waves_s = [statistics.median(r.waves_s[i] for r in rollouts) for i in range(len(_WAVES))]
    total = _DEVICES * _PER_DEVICE
    return (
        "## Server: telemetry ingest and a 1,000-device rollout\n\n"
        f'`python -c "from benchmarks import server; print(server.run())"`; medians of {_REPEATS}. {total:,} '
        f"TelemetryV1 messages from {_DEVICES} device ids, sent at QoS 1 by {_PUBLISHERS} paho publisher processes "
        "through one Mosquitto on loopback (`max_queued_messages 0`: by default it drops QoS 1 messages past 1,000 "
        "queued for a subscriber, which this burst passes even for the bare one); the server's figure runs until the "
        "last row is stored. The worker runs as the server runs it against Mosquitto: a persistent session, each "
        "report acknowledged only once committed (`max_inflight_messages 0`). Also run by `make bench`.\n\n"
        "| measure | server | baseline | ratio |\n"
        "| --- | ---: | ---: | ---: |\n"
        f"| telemetry ingest, one worker, SQLite (WAL) | {stored:,.0f} msg/s stored | {bare:,.0f} msg/s to a bare "
        f"paho subscriber | {stored / bare:.2f} (goal ≥ 0.5) |\n"
        f"| rollout to {_FLEET:,} simulated devices, waves 1, 10 %, 50 %, 100 %, bake 0 s | {total_s:.1f} s "
        f"({_FLEET / total_s:,.0f} devices/s) | – | – |\n\n"
        "Rollout: real server (HTTP, embedded amqtt broker, SQLite, tick 0.05 s); the devices are simulated by one "
        "MQTT client that answers each assignment with the device's `committed` event, so the time is the server's "
        "own (assign, publish, ingest the events, judge the gates). Per wave: "
        + ", ".join(f"{s:.1f} s" for s in waves_s)
        + ".\n"
    )

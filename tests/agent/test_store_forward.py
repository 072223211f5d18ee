"""Store-and-forward against a real broker: an outage, a kill -9 and a full outbox lose no message unreported."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import select

from edge_agent import Agent, AgentSettings, BrokerSettings, SimulatedSourceSettings
from edge_agent.mqtt import INFLIGHT_WINDOW
from edge_agent.outbox import Dropped, Outbox
from edge_agent.sequence import spent
from edgefleet.messages import EventKind, EventV1, StatusV1, TelemetryV1
from edgefleet.topics import TopicKind
from fleet_server.db import Telemetry, make_engine, make_session_factory, upgrade
from fleet_server.ingest import Ingest, IngestMetrics
from tests.agent.conftest import Subscriber, TinyPackage
from tests.infra import mosquitto
from tests.support import free_port, wait_until

pytestmark = pytest.mark.integration

T = TypeVar("T")
log = logging.getLogger(__name__)

DEVICE = "sf-1"
STATUS, TELEMETRY, EVENTS = (f"ef/v1/{DEVICE}/{kind}" for kind in ("status", "telemetry", "events"))
_REPORT = re.compile(r"dropped (\d+) telemetry messages \(seq (\d+)\.\.(\d+)\)")


class RestartableBroker:
    """Mosquitto on a fixed port, which a test stops (SIGTERM) and starts again: a real broker going away. Not the
    embedded amqtt broker: its shutdown can hang when a connection closes under it (seen in a fresh-clone run)."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self._folder = folder
        self._running: contextlib.ExitStack | None = None

    def start(self) -> None:
        running = contextlib.ExitStack()
        running.enter_context(mosquitto(self._folder, self.port))
        self._running = running

    def stop(self) -> None:
        if self._running is not None:
            self._running.close()
            self._running = None


class Gate:
    """A TCP forwarder between the agent and the broker: the device's network, which the test cuts and restores.

    The broker's own restart would race the agent's reconnection against the server's re-subscription; with
    the gate shut the broker restarts and the server subscribes again first, so any loss is the agent's.
    """

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self._target = target_port
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._is_open = threading.Event()
        self._listener: threading.Thread | None = None

    def open(self) -> None:
        self._is_open.set()
        self._listener = threading.Thread(target=self._accept, name="test-gate", daemon=True)
        self._listener.start()

    def shut(self) -> None:
        self._is_open.clear()
        if self._listener is not None:
            self._listener.join(5)
        with self._lock:
            for sock in self._sockets:
                _close(sock)
            self._sockets.clear()

    def _accept(self) -> None:
        with socket.create_server(("127.0.0.1", self.port)) as server:
            server.settimeout(0.05)
            while self._is_open.is_set():
                try:
                    device, _ = server.accept()
                except TimeoutError:
                    continue
                try:
                    broker = socket.create_connection(("127.0.0.1", self._target), timeout=5)
                except OSError:
                    _close(device)
                    continue
                with self._lock:
                    self._sockets += [device, broker]
                for src, dst in ((device, broker), (broker, device)):
                    threading.Thread(target=_pump, args=(src, dst), name="test-gate-pump", daemon=True).start()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass  # the other direction, or the gate, closed the connection
    finally:
        _close(src)
        _close(dst)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


class Server:
    """The fleet server's real ingest into a SQLite database, with its counters."""

    def __init__(self, port: int, db: Path) -> None:
        engine = make_engine(f"sqlite:///{db}")
        upgrade(engine)
        self.sessions = make_session_factory(engine)
        self.registry = CollectorRegistry()
        self.ingest = Ingest(
            self.sessions,
            IngestMetrics(self.registry),
            host="127.0.0.1",
            port=port,
            max_payload_bytes=1 << 20,
            queue_size=10_000,
        )
        self.ingest.start()

    def telemetry_seqs(self) -> list[int]:
        """The stored telemetry seqs (one row per seq: ingest dedupes on (device, seq)), in arrival order."""
        with self.sessions() as session:
            query = select(Telemetry.seq).where(Telemetry.device_id == DEVICE).order_by(Telemetry.id)
            return list(session.scalars(query))

    def duplicates(self) -> int:
        return int(self.registry.get_sample_value("edgefleet_ingest_duplicates_total") or 0)


@pytest.fixture
def network(tmp_path: Path) -> Iterator[tuple[RestartableBroker, Gate, Server]]:
    broker = RestartableBroker(tmp_path)
    broker.start()
    gate = Gate(broker.port)
    gate.open()
    server = Server(broker.port, tmp_path / "fleet.db")
    yield broker, gate, server
    server.ingest.stop()
    gate.shut()
    broker.stop()


def _settings(tiny: TinyPackage, data_dir: Path, port: int, **broker: object) -> AgentSettings:
    return AgentSettings.model_validate(
        {
            "device_id": DEVICE,
            "data_dir": data_dir,
            "broker": BrokerSettings.model_validate(
                {"port": port, "reconnect_min_s": 0.2, "reconnect_max_s": 1.0} | broker
            ),
            "package": tiny.path,
            "trusted_keys": [tiny.public_key],
            "telemetry_interval_s": 0.2,
            "source": SimulatedSourceSettings(windows_per_s=50),
        }
    )


def _seqs(subscribers: list[Subscriber]) -> list[int]:
    return [TelemetryV1.model_validate_json(p).seq for s in subscribers for p, _ in s.on(TELEMETRY)]


def _sent(data_dir: Path) -> int:
    """How many telemetry seqs the agent has taken (read once the agent has stopped)."""
    return spent(data_dir, TopicKind.TELEMETRY)


def _outage(broker: RestartableBroker, gate: Gate, server: Server, watcher: Subscriber, until: Any) -> Subscriber:
    """Cut the device's network and stop the broker until ``until()``; restart, resubscribe, restore the network."""
    gate.shut()
    # the broker has seen the device go (it sent the will) before it stops
    wait_until(lambda: any(StatusV1.model_validate_json(p).state == "offline" for p, _ in watcher.on(STATUS)))
    broker.stop()
    wait_until(until, timeout_s=15)
    broker.start()
    wait_until(lambda: server.ingest.is_connected, timeout_s=15)
    after = Subscriber(broker.port, f"ef/v1/{DEVICE}/#")
    gate.open()
    return after


def test_every_seq_arrives_once_in_order_after_a_broker_outage(
    tiny_package: TinyPackage, tmp_path: Path, network: tuple[RestartableBroker, Gate, Server]
) -> None:
    broker, gate, server = network
    before = Subscriber(broker.port, f"ef/v1/{DEVICE}/#")
    agent = Agent(_settings(tiny_package, tmp_path / "agent", gate.port))
    agent.start()
    thread = threading.Thread(target=agent.run, name="test-agent")
    thread.start()
    before.wait_for(TELEMETRY, 3)
    # several intervals' telemetry piles up in the outbox while the broker is down
    after = _outage(broker, gate, server, before, until=lambda: agent.link.queued >= 8)
    wait_until(lambda: len(after.on(TELEMETRY)) >= 12, timeout_s=20)
    agent.stop()
    thread.join(10)
    agent.close()

    sent = _sent(tmp_path / "agent")
    stored = _value_when(server.telemetry_seqs, lambda s: len(s) >= sent)
    raw = _seqs([before, after])
    first_arrivals = list(dict.fromkeys(raw))
    _counts(sent=sent, raw=len(raw), stored=len(stored), duplicates_at_ingest=server.duplicates())
    assert stored == list(range(sent))  # after dedupe: every seq once, stored in order
    assert first_arrivals == list(range(sent))  # on the wire: nothing lost, first copies in order
    assert len(raw) >= sent
    assert _on_disk(tmp_path / "agent") == (0, Dropped())


def test_messages_queued_before_a_kill_are_sent_after_the_restart(
    tiny_package: TinyPackage, tmp_path: Path, network: tuple[RestartableBroker, Gate, Server]
) -> None:
    broker, gate, server = network
    data_dir = tmp_path / "agent"
    config = tmp_path / "agent.toml"
    config.write_text(
        f'device_id = "{DEVICE}"\ndata_dir = "{data_dir}"\npackage = "{tiny_package.path}"\n'
        f'trusted_keys = ["{tiny_package.public_key}"]\ntelemetry_interval_s = 0.2\n'
        f"[broker]\nport = {gate.port}\nreconnect_min_s = 0.2\nreconnect_max_s = 1.0\n[source]\nwindows_per_s = 50\n"
    )
    watcher = Subscriber(broker.port, f"ef/v1/{DEVICE}/#")
    agent_log = (tmp_path / "agent.log").open("w")  # what the killed agent said, for a failure's post-mortem
    process = subprocess.Popen(
        [Path(sys.executable).parent / "edgefleet-agent", "run", "--config", str(config)], stderr=agent_log
    )
    try:
        watcher.wait_for(TELEMETRY, 2, timeout_s=60)
        gate.shut()
        wait_until(lambda: _on_disk(data_dir)[0] >= 5)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
        agent_log.close()
    queued = Outbox(data_dir / "outbox.sqlite3", max_messages=10**6, max_bytes=1 << 30)
    kept = [TelemetryV1.model_validate_json(q.payload).seq for q in queued.peek(after_id=0, limit=10**6)]
    queued.close()

    gate.open()
    agent = Agent(_settings(tiny_package, data_dir, gate.port))
    agent.start()
    agent.run(max_windows=5)
    agent.close()

    sent = _sent(data_dir)
    stored = _value_when(server.telemetry_seqs, lambda s: len(s) >= sent - 1)
    _counts(queued_at_kill=len(kept), sent=sent, stored=len(stored))
    assert len(kept) >= 5
    assert set(kept) <= set(stored)  # everything the killed agent had queued arrived after the restart
    # kill -9 may land between taking a seq and queueing its message: that message never existed
    assert len(set(range(sent)) - set(stored)) <= 1
    assert stored == sorted(stored)


def test_a_full_outbox_drops_the_oldest_telemetry_and_reports_how_many(
    tiny_package: TinyPackage, tmp_path: Path, network: tuple[RestartableBroker, Gate, Server]
) -> None:
    broker, gate, server = network
    before = Subscriber(broker.port, f"ef/v1/{DEVICE}/#")
    agent = Agent(_settings(tiny_package, tmp_path / "agent", gate.port, outbox_max_messages=4))
    agent.start()
    thread = threading.Thread(target=agent.run, name="test-agent")
    thread.start()
    before.wait_for(TELEMETRY, 2)
    after = _outage(broker, gate, server, before, until=lambda: _on_disk(tmp_path / "agent")[1].telemetry >= 5)
    wait_until(lambda: _reports(after), timeout_s=20)
    agent.stop()
    thread.join(10)
    agent.close()

    sent = _sent(tmp_path / "agent")
    stored = _value_when(server.telemetry_seqs, lambda s: bool(s) and s[-1] == sent - 1)
    lost = sorted(set(range(sent)) - set(stored))
    # one report per delivery pass that found drops: together they account for every lost seq
    reports = _value_when(lambda: _reports(after), lambda r: sum(n for n, _, _ in r) >= len(lost))
    _counts(sent=sent, stored=len(stored), dropped=len(lost), reports=len(reports))
    assert lost, "the outage should have overflowed a 4-message outbox"
    # every loss is reported; a report may also name a message paho already had in flight when the bound
    # dropped it, which paho still delivers (at most one window per report), so reports are an upper bound
    assert set(lost) <= {seq for _, first, last in reports for seq in range(first, last + 1)}
    assert len(lost) <= sum(n for n, _, _ in reports) <= len(lost) + INFLIGHT_WINDOW * len(reports)
    assert lost == list(range(lost[0], lost[-1] + 1))  # the oldest went first, so the loss is one run
    assert stored == sorted(stored)
    assert [e.kind for e in _events(before)][:1] == [EventKind.ACTIVE]  # events are kept, not dropped


def _counts(**counts: int) -> None:
    # in the captured log, so `pytest -rA` shows the figures of a passing run
    log.info("store_forward.counts %s", " ".join(f"{k}={v}" for k, v in counts.items()))


def _value_when(get: Callable[[], T], ok: Callable[[T], bool], timeout_s: float = 15.0) -> T:
    """``get()`` once ``ok`` accepts it."""
    return wait_until(lambda: [value] if ok(value := get()) else [], timeout_s=timeout_s)[0]


def _events(subscriber: Subscriber) -> list[EventV1]:
    return [EventV1.model_validate_json(p) for p, _ in subscriber.on(EVENTS)]


def _reports(subscriber: Subscriber) -> list[tuple[int, int, int]]:
    """(count, first seq, last seq) of each drop report among the events."""
    found = (_REPORT.search(e.detail) for e in _events(subscriber) if e.kind is EventKind.ERROR)
    return [(int(m[1]), int(m[2]), int(m[3])) for m in found if m]


def _on_disk(data_dir: Path) -> tuple[int, Dropped]:
    """What the agent's outbox file holds right now: messages, and drops not yet reported."""
    outbox = Outbox(data_dir / "outbox.sqlite3", max_messages=10**6, max_bytes=1 << 30)
    try:
        return len(outbox), outbox.dropped()
    finally:
        outbox.close()


@pytest.mark.unit
def test_the_outbox_keeps_order_drops_oldest_telemetry_first_and_survives_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    outbox = Outbox(path, max_messages=5, max_bytes=1 << 20)
    for seq in range(3):
        outbox.put(TopicKind.EVENTS, EVENTS, seq, b"event %d" % seq)
    for seq in range(10):
        outbox.put(TopicKind.TELEMETRY, TELEMETRY, seq, b"telemetry %d" % seq)
    outbox.close()

    reopened = Outbox(path, max_messages=5, max_bytes=1 << 20)
    kept = reopened.peek(after_id=0, limit=100)
    assert [q.payload for q in kept] == [b"event 0", b"event 1", b"event 2", b"telemetry 8", b"telemetry 9"]
    dropped = reopened.dropped()
    assert dropped == Dropped(telemetry=8, events=0, first_telemetry_seq=0, last_telemetry_seq=7)
    # with only events left over the bound, the oldest event goes, and is counted too
    reopened.remove([kept[3].id, kept[4].id])
    for seq in range(3, 6):
        reopened.put(TopicKind.EVENTS, EVENTS, seq, b"event %d" % seq)
    assert [q.payload for q in reopened.peek(after_id=0, limit=100)] == [b"event %d" % seq for seq in range(1, 6)]
    # a report settles exactly what it reported, in the same transaction as the report itself
    report = reopened.dropped()
    assert (report.telemetry, report.events) == (8, 1)
    reopened.remove([q.id for q in reopened.peek(after_id=0, limit=100)])
    reopened.put(TopicKind.EVENTS, EVENTS, 6, b"report", reported=report)
    assert not reopened.dropped()
    assert (len(reopened), reopened.size_bytes) == (1, len(b"report"))
    reopened.close()


@pytest.mark.unit
def test_the_outbox_bound_counts_bytes_too(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3", max_messages=1000, max_bytes=100)
    for seq in range(5):
        outbox.put(TopicKind.TELEMETRY, TELEMETRY, seq, bytes(40))
    assert (len(outbox), outbox.size_bytes, outbox.dropped().telemetry) == (2, 80, 3)
    outbox.close()

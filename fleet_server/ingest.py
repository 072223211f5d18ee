"""MQTT ingest: validate what devices publish, then store it in the database from one writer thread."""

from __future__ import annotations

import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, cast

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode
from prometheus_client import CollectorRegistry, Counter
from pydantic import ValidationError
from sqlalchemy import FromClause, Table, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from edgefleet.messages import CommandV1, EventV1, StatusV1, TelemetryV1, parse_message
from edgefleet.topics import TopicKind, parse_topic, subscription
from fleet_server.db.engine import EncodedJson
from fleet_server.db.models import Device, Event, Telemetry

__all__ = ["Ingest", "IngestMetrics"]

log = logging.getLogger(__name__)

_KIND_OF: dict[type, TopicKind] = {
    StatusV1: TopicKind.STATUS,
    TelemetryV1: TopicKind.TELEMETRY,
    EventV1: TopicKind.EVENTS,
}
# telemetry and events are inserts deduplicated on (device, seq), so any worker of a share group may take any of
# them; a device's status changes must be applied in order, and a shared subscription gets no retained messages,
# so every worker takes every status
_SHARED: Final = frozenset({TopicKind.TELEMETRY, TopicKind.EVENTS})
_BATCH = 500
_LINGER_S: Final = 0.05
_LINGER_STEP_S: Final = 0.005
_LAST_SEEN_STEP: Final = timedelta(seconds=2)
# both dialects can skip a row whose key is already stored, in the same statement
_INSERTS: dict[str, Callable[..., sqlite.Insert | postgresql.Insert]] = {
    "sqlite": sqlite.insert,
    "postgresql": postgresql.insert,
}


class IngestMetrics:
    """Counters of what ingest accepted and refused, on the app's own registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.received = Counter("edgefleet_ingest_messages_total", "MQTT messages stored", ["kind"], registry=registry)
        self.rejected = Counter(
            "edgefleet_ingest_rejected_total", "MQTT messages refused", ["reason"], registry=registry
        )
        self.duplicates = Counter(
            "edgefleet_ingest_duplicates_total", "MQTT messages dropped as repeats of a seq", registry=registry
        )


@dataclass(frozen=True, slots=True)
class _Accepted:
    message: StatusV1 | TelemetryV1 | EventV1
    received_at: datetime
    payload: bytes  # as the device sent it, already validated into ``message``
    mid: int = 0  # acknowledged to the broker once committed (durable acks), with its QoS
    qos: int = 0


class Ingest:
    """Subscribes to every device's status, telemetry and events, and persists them.

    Workers with the same ``share_group`` split the telemetry and events between them through an MQTT shared
    subscription (Mosquitto 2 serves it to MQTT 3.1.1 clients too); they need a database that takes concurrent
    writers, such as PostgreSQL.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        metrics: IngestMetrics,
        *,
        host: str,
        port: int,
        max_payload_bytes: int,
        queue_size: int,
        share_group: str | None = None,
        client_id: str | None = None,
        durable_acks: bool = False,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self._sessions = sessions
        self._metrics = metrics
        self._host, self._port = host, port
        self._max_payload = max_payload_bytes
        self._share_group = share_group
        # SimpleQueue is C all through, about ten times cheaper per message than Queue; only paho's network thread
        # puts, so checking its size before putting bounds it exactly
        self._queue: queue.SimpleQueue[_Accepted | None] = queue.SimpleQueue()
        self._queue_size = queue_size
        # each device this worker knows is stored, with the last_seen it last read or wrote (writer thread only)
        self._last_seen: dict[str, datetime] = {}
        self._connected = threading.Event()
        # a broker drops a client when another one connects with the same id: each worker needs its own. With a
        # fixed id the session persists: what devices report while this worker is down waits for it at the broker
        # (QoS 1 subscriptions), rather than being acknowledged to the device and then dropped
        persistent = client_id is not None
        client_id = client_id or f"edgefleet-ingest-{secrets.token_hex(3)}"
        # durable acks: a report is acknowledged to the broker only once committed, so a worker killed with a
        # batch in memory gets it again from its session; only with a persistent session on a broker that outlives
        # the server (the embedded broker dies with it, and its queue with it)
        self._durable_acks = durable_acks and persistent
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=not persistent,
            manual_ack=self._durable_acks,
        )
        if username is not None:
            self._client.username_pw_set(username, password)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.reconnect_delay_set(min_delay=1, max_delay=10)
        self._writer = threading.Thread(target=self._write_loop, name="ingest-writer", daemon=True)

    @property
    def is_connected(self) -> bool:
        return self._connected.is_set()

    def start(self, timeout_s: float = 10.0) -> None:
        """Connect to the broker and start writing; waits until subscribed or ``timeout_s`` passes."""
        self._writer.start()
        self._client.connect_async(self._host, self._port, keepalive=30)
        self._client.loop_start()
        if not self._connected.wait(timeout_s):
            log.warning("ingest.not_connected", extra={"host": self._host, "port": self._port})

    def stop(self, timeout_s: float = 5.0) -> None:
        """Disconnect, then let the writer store what is queued."""
        self._client.disconnect()
        self._client.loop_stop()
        self._queue.put(None)
        self._writer.join(timeout_s)

    def _on_connect(
        self, client: mqtt.Client, _userdata: object, _flags: object, reason: ReasonCode, _props: object
    ) -> None:
        if reason.is_failure:
            log.error("ingest.connect_refused", extra={"reason": str(reason)})
            return
        client.subscribe(
            [
                (subscription(kind, share_group=self._share_group if kind in _SHARED else None), 1)
                for kind in _KIND_OF.values()
            ]
        )
        self._connected.set()
        log.info("ingest.connected", extra={"host": self._host, "port": self._port})

    def _on_disconnect(self, *_args: object) -> None:
        self._connected.clear()

    def _on_message(self, _client: mqtt.Client, _userdata: object, msg: mqtt.MQTTMessage) -> None:
        # paho's network thread: validate, enqueue, return; never touch the database here
        reason = self._refusal(msg)
        if reason is not None and self._durable_acks:
            self._client.ack(msg.mid, msg.qos)  # refused for good: a redelivery would be refused again
        if reason is not None:
            self._metrics.rejected.labels(reason=reason).inc()
            log.warning("ingest.rejected", extra={"topic": msg.topic[:200], "reason": reason})

    def _refusal(self, msg: mqtt.MQTTMessage) -> str | None:
        if len(msg.payload) > self._max_payload:
            return "oversized"
        parsed_topic = parse_topic(msg.topic)
        if parsed_topic is None:
            return "unknown_topic"
        if not msg.payload and msg.retain:
            return "cleared_retained"
        try:
            message = parse_message(msg.payload)
        except ValidationError:
            return "invalid_payload"
        device_id, kind = parsed_topic
        if message.device_id != device_id:
            return "device_mismatch"
        if isinstance(message, CommandV1) or _KIND_OF[type(message)] is not kind:
            return "wrong_kind"
        # PostgreSQL text cannot hold NUL: stored, it would fail the whole batch and drop other devices' messages;
        # JSON carries NUL only as the escape \u0000, so most payloads skip the walk
        if b"\\u0000" in msg.payload and _has_nul(message.model_dump()):
            return "nul_character"
        if self._queue.qsize() >= self._queue_size:
            return "queue_full"
        self._queue.put(_Accepted(message, datetime.now(UTC), bytes(msg.payload), msg.mid, msg.qos))
        return None

    def _write_loop(self) -> None:
        stopping = False
        while not stopping:
            batch: list[_Accepted] = []
            item = self._queue.get()
            # a transaction costs about as much as a hundred rows: letting messages gather a moment keeps batches
            # large at a cost of _LINGER_S in latency. The writer sleeps meanwhile rather than wait on the queue,
            # which would wake it (and take the GIL from paho's thread) once per message
            deadline = time.monotonic() + _LINGER_S
            while self._queue.qsize() < _BATCH and time.monotonic() < deadline:
                time.sleep(_LINGER_STEP_S)
            while item is not None:
                batch.append(item)
                if len(batch) >= _BATCH:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            stopping = item is None
            if batch:
                self._store(batch)

    def _store(self, batch: list[_Accepted]) -> None:
        """One transaction per batch: the devices read and created together, telemetry and events each inserted
        with one statement (a statement per message capped ingest at about a thousand messages a second)."""
        # workers sharing the load then lock device rows in one order and cannot deadlock; the sort is stable,
        # so each device's statuses keep their arrival order
        batch.sort(key=lambda accepted: accepted.message.device_id)
        try:
            with self._sessions.begin() as session:
                seen = self._touch_devices(session, batch)
                statuses = [a.message for a in batch if isinstance(a.message, StatusV1)]
                for status in statuses:
                    session.execute(update(Device).where(Device.id == status.device_id).values(_status_values(status)))
                telemetry = [
                    _telemetry_row(a.message, a.received_at, a.payload)
                    for a in batch
                    if isinstance(a.message, TelemetryV1)
                ]
                events = [_event_row(a.message, a.received_at) for a in batch if isinstance(a.message, EventV1)]
                stored_telemetry = _insert_once(session, Telemetry, telemetry)
                stored_events = _insert_once(session, Event, events)
        except Exception:  # a bad batch must not stop ingest: it is logged, counted and dropped
            log.exception("ingest.store_failed", extra={"messages": len(batch)})
            self._metrics.rejected.labels(reason="store_failed").inc(len(batch))
            self._ack(batch)
            return
        self._ack(batch)
        # only what is committed counts, and only a committed device is known to exist
        self._last_seen.update(seen)
        self._metrics.received.labels(kind="status").inc(len(statuses))
        self._metrics.received.labels(kind="telemetry").inc(stored_telemetry)
        self._metrics.received.labels(kind="event").inc(stored_events)
        self._metrics.duplicates.inc(len(telemetry) + len(events) - stored_telemetry - stored_events)

    def _ack(self, batch: list[_Accepted]) -> None:
        if self._durable_acks:
            for accepted in batch:
                self._client.ack(accepted.mid, accepted.qos)

    def _touch_devices(self, session: Session, batch: list[_Accepted]) -> dict[str, datetime]:
        """Create the batch's new devices and move ``last_seen`` on (to within ``_LAST_SEEN_STEP``); returns the
        last_seen values the transaction writes, to remember once it commits.

        Known devices and their last_seen are remembered between batches, so a batch of devices seen recently
        costs no database work for them at all: reading them back was 40 % of the writer's time.
        """
        last_seen = {a.message.device_id: a.received_at for a in batch}
        unknown = [device_id for device_id in last_seen if device_id not in self._last_seen]
        written: dict[str, datetime] = {}
        stored: dict[str, datetime] = {}
        if unknown:
            rows = session.execute(select(Device.id, Device.last_seen).where(Device.id.in_(unknown))).all()
            stored = {device_id: _aware(at) for device_id, at in rows}
            missing = sorted(set(unknown) - set(stored))
            if missing:
                # another worker may add the same new device right now: the second insert is skipped, not an error
                session.execute(
                    _insert(session, Device)
                    .values([_new_device(d, last_seen[d]) for d in missing])
                    .on_conflict_do_nothing()
                )
                written |= {device_id: last_seen[device_id] for device_id in missing}
        previous = {d: self._last_seen.get(d) or stored[d] for d in last_seen if d not in written}
        due = {d: last_seen[d] for d, seen in previous.items() if last_seen[d] - seen >= _LAST_SEEN_STEP}
        if due:
            # "online" is judged in tens of seconds: a device sending every interval would otherwise cost one row
            # update per batch; never moved back by a worker that took an older message
            table = cast(Table, Device.__table__)
            session.connection().execute(
                update(table)
                .where(table.c.id == bindparam("device"), table.c.last_seen < bindparam("at"))
                .values(last_seen=bindparam("at")),
                [{"device": device_id, "at": at} for device_id, at in due.items()],
            )
        return previous | written | due


def _aware(at: datetime) -> datetime:
    # SQLite gives back naive datetimes; every time the server stores is UTC
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _new_device(device_id: str, at: datetime) -> dict[str, object]:
    return {
        "id": device_id,
        "first_seen": at,
        "last_seen": at,
        "state": "online",
        "profile": "",
        "agent_version": "",
        "status_seq": -1,
    }


def _status_values(status: StatusV1) -> dict[str, object]:
    values: dict[str, object] = {
        "state": status.state,
        "profile": status.profile,
        "agent_version": status.agent_version,
        "status_seq": status.seq,
        "keys_version": status.keys_version,
    }
    if status.model is not None:
        values |= {
            "model_name": status.model.name,
            "model_version": status.model.version,
            "model_sha256": status.model.sha256,
            "artifact": status.model.artifact,
            "slot": status.model.slot,
        }
    return values


def _insert_once(session: Session, table: type[Telemetry] | type[Event], rows: list[dict[str, object]]) -> int:
    """Insert ``rows``, skipping every (device, seq) already stored (QoS 1 repeats); returns how many were new."""
    if not rows:
        return 0
    statement = (
        _insert(session, table.__table__)
        .on_conflict_do_nothing(index_elements=["device_id", "seq"])
        .returning(table.__table__.c.id)
    )
    # one compiled statement for any batch (SQLAlchemy's insertmanyvalues); skipped rows return nothing, and
    # rowcount cannot tell: it is -1 for this statement on PostgreSQL
    return len(session.connection().execute(statement, rows).all())


def _telemetry_row(t: TelemetryV1, at: datetime, payload: bytes) -> dict[str, object]:
    return {
        "device_id": t.device_id,
        "seq": t.seq,
        "ts": t.ts,
        "received_at": at,
        "interval_s": t.interval_s,
        "model_version": t.model.version if t.model else None,
        "inference_count": t.inference_count,
        "error_count": t.error_count,
        "drop_count": t.drop_count,
        "latency_p50_ms": t.latency.p50_ms if t.latency else None,
        "latency_p95_ms": t.latency.p95_ms if t.latency else None,
        "latency_max_ms": t.latency.max_ms if t.latency else None,
        "payload": EncodedJson(payload.decode()),
    }


def _event_row(e: EventV1, at: datetime) -> dict[str, object]:
    return {
        "device_id": e.device_id,
        "seq": e.seq,
        "ts": e.ts,
        "received_at": at,
        "kind": e.kind.value,
        "rollout_id": e.rollout_id,
        "package": e.package,
        "detail": e.detail,
    }


def _has_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(key) or _has_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    return False


def _insert(session: Session, table: type[Device] | FromClause) -> sqlite.Insert | postgresql.Insert:
    return _INSERTS[session.get_bind().dialect.name](table)

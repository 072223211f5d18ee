"""MQTT ingest: validate what devices publish, then store it in the database from one writer thread."""

from __future__ import annotations

import logging
import queue
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode
from prometheus_client import CollectorRegistry, Counter
from pydantic import ValidationError
from sqlalchemy import FromClause, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from edgefleet.messages import EventV1, StatusV1, TelemetryV1, parse_message
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
_BATCH = 200
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
    ) -> None:
        self._sessions = sessions
        self._metrics = metrics
        self._host, self._port = host, port
        self._max_payload = max_payload_bytes
        self._share_group = share_group
        self._queue: queue.Queue[_Accepted | None] = queue.Queue(maxsize=queue_size)
        self._connected = threading.Event()
        # a broker drops a client when another one connects with the same id: each worker needs its own
        client_id = client_id or f"edgefleet-ingest-{secrets.token_hex(3)}"
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
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
        if not isinstance(message, StatusV1 | TelemetryV1 | EventV1) or _KIND_OF[type(message)] is not kind:
            return "wrong_kind"
        # PostgreSQL text cannot hold NUL: stored, it would fail the whole batch and drop other devices' messages;
        # JSON carries NUL only as the escape \u0000, so most payloads skip the walk
        if b"\\u0000" in msg.payload and _has_nul(message.model_dump()):
            return "nul_character"
        try:
            self._queue.put_nowait(_Accepted(message, datetime.now(UTC), bytes(msg.payload)))
        except queue.Full:
            return "queue_full"
        return None

    def _write_loop(self) -> None:
        stopping = False
        while not stopping:
            batch: list[_Accepted] = []
            item = self._queue.get()
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
                devices = _devices(session, batch)
                for accepted in batch:
                    if isinstance(accepted.message, StatusV1):
                        self._store_status(devices[accepted.message.device_id], accepted.message)
                telemetry = [
                    _telemetry_row(a.message, a.received_at, a.payload)
                    for a in batch
                    if isinstance(a.message, TelemetryV1)
                ]
                events = [_event_row(a.message, a.received_at) for a in batch if isinstance(a.message, EventV1)]
                self._insert_once(session, Telemetry, telemetry, "telemetry")
                self._insert_once(session, Event, events, "event")
        except Exception:  # a bad batch must not stop ingest: it is logged, counted and dropped
            log.exception("ingest.store_failed", extra={"messages": len(batch)})
            self._metrics.rejected.labels(reason="store_failed").inc(len(batch))

    def _store_status(self, device: Device, status: StatusV1) -> None:
        device.state = status.state
        device.profile = status.profile
        device.agent_version = status.agent_version
        device.status_seq = status.seq
        if status.model is not None:
            device.model_name = status.model.name
            device.model_version = status.model.version
            device.model_sha256 = status.model.sha256
            device.artifact = status.model.artifact
            device.slot = status.model.slot
        self._metrics.received.labels(kind="status").inc()

    def _insert_once(
        self, session: Session, table: type[Telemetry] | type[Event], rows: list[dict[str, object]], kind: str
    ) -> None:
        """Insert ``rows``, skipping every (device, seq) already stored: those are QoS 1 repeats."""
        if not rows:
            return
        statement = (
            _insert(session, table.__table__)
            .on_conflict_do_nothing(index_elements=["device_id", "seq"])
            .returning(table.__table__.c.id)
        )
        # one compiled statement for any batch (SQLAlchemy's insertmanyvalues); skipped rows return nothing, and
        # rowcount cannot tell: it is -1 for this statement on PostgreSQL
        stored = len(session.connection().execute(statement, rows).all())
        self._metrics.received.labels(kind=kind).inc(stored)
        self._metrics.duplicates.inc(len(rows) - stored)


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


def _devices(session: Session, batch: list[_Accepted]) -> dict[str, Device]:
    """The batch's devices by id, created when new, each seen (to within ``_LAST_SEEN_STEP``) at its last message."""
    last_seen = {a.message.device_id: a.received_at for a in batch}
    found = {d.id: d for d in session.scalars(select(Device).where(Device.id.in_(last_seen)))}
    missing = sorted(set(last_seen) - set(found))
    if missing:
        # another worker may add the same new device right now: the second insert is skipped, not an error
        new = [
            {
                "id": device_id,
                "first_seen": last_seen[device_id],
                "last_seen": last_seen[device_id],
                "state": "online",
                "profile": "",
                "agent_version": "",
                "status_seq": -1,
            }
            for device_id in missing
        ]
        session.execute(_insert(session, Device).values(new).on_conflict_do_nothing())
        found |= {d.id: d for d in session.scalars(select(Device).where(Device.id.in_(missing)))}
    for device_id, at in last_seen.items():
        device = found[device_id]
        seen = device.last_seen if device.last_seen.tzinfo is not None else device.last_seen.replace(tzinfo=UTC)
        # written at most every few seconds: a device sending every interval would otherwise cost one row update
        # per batch, and "online" is judged in tens of seconds
        if at - seen >= _LAST_SEEN_STEP:
            device.last_seen = at
    return found

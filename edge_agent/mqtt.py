"""The agent's MQTT link: retained status with an offline last will, and QoS 1 telemetry and events."""

from __future__ import annotations

import logging
import queue
import sqlite3
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

import edgefleet
from edge_agent.backoff import Backoff
from edge_agent.outbox import Dropped, Outbox
from edge_agent.sequence import Sequences
from edge_agent.settings import BrokerSettings
from edgefleet.errors import AgentError, EdgefleetError
from edgefleet.messages import ActiveModel, CommandV1, EventKind, EventV1, StatusV1, TelemetryV1, parse_message
from edgefleet.topics import TopicKind, topic

__all__ = ["INFLIGHT_WINDOW", "Link"]

log = logging.getLogger(__name__)

# outbox messages handed to paho and not yet acknowledged: enough to keep a link busy, few enough that
# paho's memory never holds more than a handful (everything else waits on disk)
INFLIGHT_WINDOW: Final = 16
# the sender also wakes this often with nothing to do, so a missed wake-up (a publish paho refused, a disk
# error) costs at most this delay; every real event wakes it at once. Short, it costs an idle fleet dearly:
# two SQLite queries per device per wake-up
_IDLE_S: Final = 5.0


@dataclass(slots=True)
class _SendState:
    """What the sender thread knows between passes."""

    inflight: dict[int, int] = field(default_factory=dict)  # paho mid -> outbox id, awaiting PUBACK
    sent_upto: int = 0  # the last outbox id handed to paho on this connection
    session: int = 0  # the connection these belong to (Link._sessions)


class Link:
    """One device's connection to the broker; paho's own thread does the network work.

    Telemetry and events go through the on-disk ``outbox``: a sender thread hands paho at most ``INFLIGHT_WINDOW`` of
    them, in order, only while connected, and deletes each one when its PUBACK arrives (``on_publish``).
    After a reconnection it sends again from the oldest unacknowledged message: QoS 1 allows the duplicates,
    and the server drops them by ``(device, seq)``.

    Paho's callbacks only note what happened (queues, events); ``poll``, on the agent's thread, publishes the
    online status after each reconnection, and the sender thread does the disk work, so paho's network thread
    never blocks on disk or locks.
    """

    def __init__(
        self,
        device_id: str,
        profile: str,
        broker: BrokerSettings,
        sequences: Sequences,
        outbox: Outbox,
        keys_version: Callable[[], int | None] = lambda: None,
    ) -> None:
        self.device_id, self.profile = device_id, profile
        self._broker = broker
        self._seq = sequences
        self._outbox = outbox
        self._outbox_failing = False
        self._model: ActiveModel | None = None
        self._keys_version = keys_version
        self._connected = threading.Event()
        self._connects: queue.SimpleQueue[bool] = queue.SimpleQueue()
        self._sessions = 0  # successful connections so far; the sender resends everything when it changes
        self._acks: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._progress = threading.Event()
        self._closing = threading.Event()
        self._sender = threading.Thread(target=self._send_loop, name=f"outbox-{device_id}", daemon=True)
        self._online_seq = 0
        self._backoff = Backoff(broker.reconnect_min_s, broker.reconnect_max_s)
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device_id)
        if broker.username is not None:
            password = broker.password.get_secret_value() if broker.password else None
            self._client.username_pw_set(broker.username, password)
        if broker.tls:
            self._set_tls(broker)
        # paho's own (unjittered) schedule, in case it ever waits without calling one of the callbacks that
        # put Backoff's next delay in its place (see _steer_reconnect)
        self._client.reconnect_delay_set(
            min_delay=broker.reconnect_min_s,  # type: ignore[arg-type]  # paho annotates int, computes with floats
            max_delay=broker.reconnect_max_s,  # type: ignore[arg-type]
        )
        self._client.on_connect = self._on_connect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.on_message = self._on_message
        self._commands: queue.SimpleQueue[CommandV1] = queue.SimpleQueue()
        self._command_seqs: deque[int] = deque(maxlen=64)

    @property
    def is_connected(self) -> bool:
        return self._connected.is_set()

    @property
    def queued(self) -> int:
        """Telemetry and events not yet acknowledged by the broker (in flight or waiting in the outbox)."""
        return len(self._outbox)

    def start(self, model: ActiveModel | None, timeout_s: float = 10.0) -> bool:
        """Connect in the background and say online; waits up to ``timeout_s``, returns whether it is connected.

        When the broker is not there yet, paho keeps trying, and ``poll`` says online once it connects;
        meanwhile telemetry and events wait in the outbox.
        """
        self._model = model
        self._arm_will()
        self._sender.start()
        self._client.connect_async(self._broker.host, self._broker.port, keepalive=self._broker.keepalive_s)
        self._client.loop_start()
        connected = self._connected.wait(timeout_s)
        if not connected:
            log.warning("mqtt.not_connected", extra={"host": self._broker.host, "port": self._broker.port})
        self.poll()
        return connected

    def poll(self) -> None:
        """Act on what the network thread noted: after each (re)connection, publish the online status."""
        while True:
            try:
                self._connects.get_nowait()
            except queue.Empty:
                return
            self._publish_status(self._status("online", self._online_seq))
            log.info("mqtt.online", extra={"device": self.device_id})
            self._arm_will()

    def close(self, timeout_s: float = 5.0) -> None:
        """Send what the outbox holds (up to ``timeout_s``), say offline (retained), then disconnect cleanly.

        The clean disconnect suppresses the last will; what could not be sent stays in the outbox for the
        next start.
        """
        if self.is_connected:
            self._drain(timeout_s)
            offline = self._status("offline", self._seq.take(TopicKind.STATUS))
            info = self._publish_status(offline)
            if info is not None and info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
                info.wait_for_publish(timeout_s)
        self._closing.set()
        self._wake.set()
        self._client.disconnect()
        self._client.loop_stop()
        if self._sender.is_alive():
            self._sender.join(timeout_s)
        unsent = len(self._outbox)
        self._outbox.close()
        log.info("mqtt.closed", extra={"device": self.device_id, "unsent": unsent})

    def publish_telemetry(self, message: TelemetryV1) -> None:
        """Queue ``message`` in the outbox; it is sent now, or after the broker comes back."""
        self._queue(TopicKind.TELEMETRY, message)

    def publish_event(
        self,
        kind: EventKind,
        *,
        package: str | None = None,
        detail: str = "",
        rollout_id: str | None = None,
        reason: str | None = None,
    ) -> None:
        """Queue an event of ``kind`` with the next events ``seq``."""
        event = self._event(kind, package=package, detail=detail)
        self._queue(TopicKind.EVENTS, event.model_copy(update={"rollout_id": rollout_id, "reason": reason}))

    def set_model(self, model: ActiveModel | None) -> None:
        """Say which model now runs, in a new retained status.

        The last will armed at connection still names the previous model: the broker only sends it when the
        device dies, and the server keeps the model from the latest status and from the update events.
        """
        self._model = model
        self.announce()

    def announce(self) -> None:
        """Publish a new retained status, e.g. after the device adopted a newer signing-key list (the server sends
        a newer list to a device whose status shows an older one)."""
        if self.is_connected:
            self._publish_status(self._status("online", self._seq.take(TopicKind.STATUS)))

    def commands(self) -> list[CommandV1]:
        """The commands received since the last call, oldest first, each valid and addressed to this device."""
        received: list[CommandV1] = []
        while True:
            try:
                received.append(self._commands.get_nowait())
            except queue.Empty:
                return received

    def next_seq(self, kind: TopicKind) -> int:
        """The next ``seq`` of this device on ``kind``, spent when the outbox stores its message."""
        return self._seq.reserve(kind)

    def _queue(self, kind: TopicKind, message: TelemetryV1 | EventV1, reported: Dropped | None = None) -> None:
        payload = message.model_dump_json().encode()
        try:
            self._outbox.put(kind, topic(self.device_id, kind), message.seq, payload, reported=reported)
        except AgentError as err:
            self._send_unstored(kind, message.seq, payload, err)
            return
        self._outbox_failing = False
        self._wake.set()

    def _send_unstored(self, kind: TopicKind, seq: int, payload: bytes, err: AgentError) -> None:
        """The outbox cannot be written (a full disk): send straight away without store-and-forward, and say so
        once per episode, so the fleet learns why this device may lose data while the broker is away."""
        if not self._outbox_failing:
            self._outbox_failing = True
            log.error("outbox.unwritable", extra={"device": self.device_id, "error": err.message})
            warning = self._event(
                EventKind.ERROR,
                detail=f"data_dir is full or unwritable, sending without store-and-forward: {err.message}",
            )
            self._seq.spend(TopicKind.EVENTS, warning.seq)
            self._client.publish(topic(self.device_id, TopicKind.EVENTS), warning.model_dump_json(), qos=1)
        self._seq.spend(kind, seq)
        self._client.publish(topic(self.device_id, kind), payload, qos=1)

    def _event(self, kind: EventKind, *, package: str | None = None, detail: str = "") -> EventV1:
        return EventV1(
            device_id=self.device_id,
            seq=self._seq.reserve(TopicKind.EVENTS),
            ts=time.time(),
            kind=kind,
            package=package,
            detail=detail,
        )

    def _drain(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self._outbox) and self.is_connected and time.monotonic() < deadline:
            self._progress.wait(min(_IDLE_S, max(0.0, deadline - time.monotonic())))
            self._progress.clear()

    def _send_loop(self) -> None:
        """The sender thread: one pass per wake-up (a message queued, an ack, a connection) or per ``_IDLE_S``."""
        state = _SendState()
        while not self._closing.is_set():
            self._wake.wait(_IDLE_S)
            self._wake.clear()
            try:
                self._send_pass(state)
            except (EdgefleetError, sqlite3.Error):
                # a full or failing disk: say so and retry on the next pass, rather than stop sending for good
                log.exception("outbox.send_failed", extra={"device": self.device_id})

    def _send_pass(self, state: _SendState) -> None:
        """Settle acknowledgements, report drops, hand paho the next messages in order."""
        acked = []
        while True:
            try:
                acked.append(self._acks.get_nowait())
            except queue.Empty:
                break
        self._outbox.remove([state.inflight.pop(mid) for mid in acked if mid in state.inflight])
        if acked:
            self._progress.set()
        if state.session != self._sessions:
            # a new connection: paho may resend its own copies, but the outbox's are the ones we can count on
            state.inflight.clear()
            state.sent_upto, state.session = 0, self._sessions
        if not self.is_connected or self._closing.is_set():
            return
        self._report_drops()
        for queued in self._outbox.peek(after_id=state.sent_upto, limit=INFLIGHT_WINDOW - len(state.inflight)):
            info = self._client.publish(queued.topic, queued.payload, qos=1)
            if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
                log.warning("mqtt.publish_refused", extra={"topic": queued.topic, "rc": info.rc.name})
                return
            state.inflight[info.mid] = queued.id
            state.sent_upto = queued.id

    def _report_drops(self) -> None:
        dropped = self._outbox.dropped()
        if not dropped:
            return
        seqs = f" (seq {dropped.first_telemetry_seq}..{dropped.last_telemetry_seq})" if dropped.telemetry else ""
        detail = (
            f"outbox full while the broker was away: dropped {dropped.telemetry} telemetry messages{seqs}"
            f" and {dropped.events} events; raise broker.outbox_max_messages or outbox_max_bytes to keep more"
        )
        self._queue(TopicKind.EVENTS, self._event(EventKind.ERROR, detail=detail), reported=dropped)
        log.warning("outbox.drops_reported", extra={"telemetry": dropped.telemetry, "events": dropped.events})

    def _arm_will(self) -> None:
        # the seqs of the next online status and of the will that may follow it are taken together, so a
        # will the broker sends after that online status always carries the larger seq
        self._online_seq = self._seq.take(TopicKind.STATUS)
        will = self._status("offline", self._seq.take(TopicKind.STATUS))
        self._client.will_set(topic(self.device_id, TopicKind.STATUS), will.model_dump_json(), qos=1, retain=True)

    def _publish_status(self, message: StatusV1) -> mqtt.MQTTMessageInfo | None:
        # status bypasses the outbox: it is retained, so only the latest matters, and the will covers a crash
        info = self._client.publish(
            topic(self.device_id, TopicKind.STATUS), message.model_dump_json(), qos=1, retain=True
        )
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS and info.rc != MQTTErrorCode.MQTT_ERR_NO_CONN:
            log.warning("mqtt.publish_refused", extra={"topic": "status", "seq": message.seq, "rc": info.rc.name})
            return None
        return info

    def _status(self, state: Literal["online", "offline"], seq: int) -> StatusV1:
        return StatusV1(
            device_id=self.device_id,
            seq=seq,
            ts=time.time(),
            state=state,
            agent_version=edgefleet.__version__,
            profile=self.profile,
            model=self._model,
            keys_version=self._keys_version(),
        )

    def _set_tls(self, broker: BrokerSettings) -> None:
        self._client.tls_set(
            ca_certs=str(broker.ca_file) if broker.ca_file else None,
            certfile=str(broker.client_cert) if broker.client_cert else None,
            keyfile=str(broker.client_key) if broker.client_key else None,
            cert_reqs=ssl.CERT_NONE if broker.insecure_skip_verify else ssl.CERT_REQUIRED,
        )
        if broker.insecure_skip_verify:
            self._client.tls_insecure_set(True)
            log.warning("mqtt.tls_unverified", extra={"host": broker.host})

    def _steer_reconnect(self) -> None:
        # Paho's network thread waits `_reconnect_delay` before each attempt; that delay starts at min_delay
        # after reconnect_delay_set and then doubles up to max_delay, without jitter. Setting min = max = our
        # next jittered delay just before each wait (this runs in on_disconnect and on_connect_fail, which paho
        # calls right before it waits) makes paho follow Backoff's schedule.
        delay_s = self._backoff.next_delay_s()
        # paho annotates int, but _reconnect_wait only does float arithmetic with it; whole seconds would
        # round the jitter away
        self._client.reconnect_delay_set(min_delay=delay_s, max_delay=delay_s)  # type: ignore[arg-type]
        log.debug("mqtt.reconnect_in", extra={"device": self.device_id, "delay_s": round(delay_s, 3)})

    def _on_connect(
        self, _client: mqtt.Client, _userdata: object, _flags: object, reason: ReasonCode, _props: object
    ) -> None:
        if reason.is_failure:
            log.error("mqtt.refused", extra={"device": self.device_id, "reason": str(reason)})
            return
        self._backoff.reset()
        self._sessions += 1
        self._client.subscribe(topic(self.device_id, TopicKind.COMMANDS), qos=1)
        self._connects.put_nowait(True)
        self._connected.set()
        self._wake.set()
        log.info("mqtt.connected", extra={"device": self.device_id})

    def _on_connect_fail(self, _client: mqtt.Client, _userdata: object) -> None:
        self._steer_reconnect()
        log.info("mqtt.connect_failed", extra={"device": self.device_id, "host": self._broker.host})

    def _on_disconnect(self, *_args: object) -> None:
        self._connected.clear()
        self._steer_reconnect()
        log.info("mqtt.disconnected", extra={"device": self.device_id})

    def _on_message(self, _client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        if message.topic != topic(self.device_id, TopicKind.COMMANDS):
            # not what this device subscribed to: amqtt 0.12 replays other devices' retained statuses to a
            # resumed session now and then; nothing a device acts on, and nothing to warn an operator about
            log.debug("mqtt.foreign_message", extra={"device": self.device_id, "topic": message.topic[:200]})
            return
        try:
            command = parse_message(message.payload)
        except ValueError as err:  # pydantic's ValidationError is a ValueError
            log.warning("mqtt.command_invalid", extra={"device": self.device_id, "error": str(err)[:300]})
            return
        if not isinstance(command, CommandV1) or command.device_id != self.device_id:
            log.warning("mqtt.command_misaddressed", extra={"device": self.device_id, "topic": message.topic})
            return
        # QoS 1 delivers at least once: a repeated seq is the same command again
        if command.seq in self._command_seqs:
            return
        self._command_seqs.append(command.seq)
        self._commands.put_nowait(command)

    def _on_publish(self, _client: mqtt.Client, _userdata: object, mid: int, _reason: object, _props: object) -> None:
        self._acks.put_nowait(mid)
        self._wake.set()

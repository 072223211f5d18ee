"""The agent's MQTT link: retained status with an offline last will, and QoS 1 telemetry and events."""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Final, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

import edgefleet
from edge_agent.sequence import Sequences
from edge_agent.settings import BrokerSettings
from edgefleet.messages import ActiveModel, EventKind, EventV1, StatusV1, TelemetryV1
from edgefleet.topics import TopicKind, topic

__all__ = ["Link"]

log = logging.getLogger(__name__)

# QoS 1 messages paho keeps while the broker is away: about 3 hours of telemetry at a 10 s interval;
# past it, new messages are refused (and logged) instead of growing memory without bound
_MAX_QUEUED: Final = 1000


class Link:
    """One device's connection to the broker; paho's own thread does the network work.

    Paho's callbacks only note what happened in a queue; ``poll``, on the agent's thread, acts on it
    (publishing the online status after each reconnect), so the network thread never blocks on disk or locks.
    """

    def __init__(self, device_id: str, profile: str, broker: BrokerSettings, sequences: Sequences) -> None:
        self.device_id, self.profile = device_id, profile
        self._broker = broker
        self._seq = sequences
        self._model: ActiveModel | None = None
        self._connected = threading.Event()
        self._connects: queue.SimpleQueue[bool] = queue.SimpleQueue()
        self._online_seq = 0
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device_id)
        if broker.username is not None:
            password = broker.password.get_secret_value() if broker.password else None
            self._client.username_pw_set(broker.username, password)
        self._client.reconnect_delay_set(min_delay=1, max_delay=30)
        self._client.max_queued_messages_set(_MAX_QUEUED)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect

    @property
    def is_connected(self) -> bool:
        return self._connected.is_set()

    def start(self, model: ActiveModel | None, timeout_s: float = 10.0) -> bool:
        """Connect in the background and say online; waits up to ``timeout_s``, returns whether it is connected.

        When the broker is not there yet, paho keeps trying, and ``poll`` says online once it connects.
        """
        self._model = model
        self._arm_will()
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
            self._publish(TopicKind.STATUS, self._status("online", self._online_seq), retain=True)
            log.info("mqtt.online", extra={"device": self.device_id})
            self._arm_will()

    def close(self, timeout_s: float = 5.0) -> None:
        """Say offline (retained), then disconnect cleanly, which suppresses the last will."""
        if self.is_connected:
            offline = self._status("offline", self._seq.take(TopicKind.STATUS))
            info = self._publish(TopicKind.STATUS, offline, retain=True)
            if info is not None and info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
                info.wait_for_publish(timeout_s)
        self._client.disconnect()
        self._client.loop_stop()
        log.info("mqtt.closed", extra={"device": self.device_id})

    def publish_telemetry(self, message: TelemetryV1) -> None:
        """Queue ``message`` at QoS 1; paho sends it now, or after a reconnect."""
        self._publish(TopicKind.TELEMETRY, message)

    def publish_event(self, kind: EventKind, *, package: str | None = None, detail: str = "") -> None:
        """Publish an event of ``kind`` with the next events ``seq``."""
        event = EventV1(
            device_id=self.device_id,
            seq=self._seq.take(TopicKind.EVENTS),
            ts=time.time(),
            kind=kind,
            package=package,
            detail=detail,
        )
        self._publish(TopicKind.EVENTS, event)

    def next_seq(self, kind: TopicKind) -> int:
        """The next ``seq`` of this device on ``kind`` (kept across restarts)."""
        return self._seq.take(kind)

    def _arm_will(self) -> None:
        # the seqs of the next online status and of the will that may follow it are taken together, so a
        # will the broker sends after that online status always carries the larger seq
        self._online_seq = self._seq.take(TopicKind.STATUS)
        will = self._status("offline", self._seq.take(TopicKind.STATUS))
        self._client.will_set(topic(self.device_id, TopicKind.STATUS), will.model_dump_json(), qos=1, retain=True)

    def _publish(
        self, kind: TopicKind, message: StatusV1 | TelemetryV1 | EventV1, *, retain: bool = False
    ) -> mqtt.MQTTMessageInfo | None:
        info = self._client.publish(topic(self.device_id, kind), message.model_dump_json(), qos=1, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS and info.rc != MQTTErrorCode.MQTT_ERR_NO_CONN:
            log.warning("mqtt.publish_refused", extra={"topic": kind.value, "seq": message.seq, "rc": info.rc.name})
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
        )

    def _on_connect(
        self, _client: mqtt.Client, _userdata: object, _flags: object, reason: ReasonCode, _props: object
    ) -> None:
        if reason.is_failure:
            log.error("mqtt.refused", extra={"device": self.device_id, "reason": str(reason)})
            return
        self._connects.put_nowait(True)
        self._connected.set()
        log.info("mqtt.connected", extra={"device": self.device_id})

    def _on_disconnect(self, *_args: object) -> None:
        self._connected.clear()
        log.info("mqtt.disconnected", extra={"device": self.device_id})

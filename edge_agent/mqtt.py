"""The agent's MQTT link: retained status with an offline last will, and QoS 1 telemetry and events."""

from __future__ import annotations

import logging
import threading
import time
from typing import Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

import edgefleet
from edge_agent.sequence import Sequences
from edge_agent.settings import BrokerSettings
from edgefleet.messages import ActiveModel, EventKind, EventV1, StatusV1, TelemetryV1
from edgefleet.topics import TopicKind, topic

__all__ = ["Link"]

log = logging.getLogger(__name__)


class Link:
    """One device's connection to the broker; paho's own thread does the network work."""

    def __init__(self, device_id: str, profile: str, broker: BrokerSettings, sequences: Sequences) -> None:
        self.device_id, self.profile = device_id, profile
        self._broker = broker
        self._seq = sequences
        self._model: ActiveModel | None = None
        self._connected = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device_id)
        if broker.username is not None:
            password = broker.password.get_secret_value() if broker.password else None
            self._client.username_pw_set(broker.username, password)
        self._client.will_set(
            topic(device_id, TopicKind.STATUS), self._status("offline").model_dump_json(), qos=1, retain=True
        )
        self._client.reconnect_delay_set(min_delay=1, max_delay=30)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect

    @property
    def is_connected(self) -> bool:
        return self._connected.is_set()

    def start(self, model: ActiveModel | None, timeout_s: float = 10.0) -> None:
        """Connect in the background; waits up to ``timeout_s`` for the first connection."""
        self._model = model
        self._client.connect_async(self._broker.host, self._broker.port, keepalive=self._broker.keepalive_s)
        self._client.loop_start()
        if not self._connected.wait(timeout_s):
            log.warning("mqtt.not_connected", extra={"host": self._broker.host, "port": self._broker.port})

    def close(self, timeout_s: float = 5.0) -> None:
        """Say offline (retained), then disconnect cleanly, which suppresses the last will."""
        if self.is_connected:
            info = self._client.publish(
                topic(self.device_id, TopicKind.STATUS), self._status("offline").model_dump_json(), qos=1, retain=True
            )
            info.wait_for_publish(timeout_s)
        self._client.disconnect()
        self._client.loop_stop()

    def publish_telemetry(self, message: TelemetryV1) -> None:
        self._client.publish(topic(self.device_id, TopicKind.TELEMETRY), message.model_dump_json(), qos=1)

    def publish_event(self, kind: EventKind, *, package: str | None = None, detail: str = "") -> None:
        event = EventV1(
            device_id=self.device_id,
            seq=self._seq.take(TopicKind.EVENTS),
            ts=time.time(),
            kind=kind,
            package=package,
            detail=detail,
        )
        self._client.publish(topic(self.device_id, TopicKind.EVENTS), event.model_dump_json(), qos=1)

    def next_seq(self, kind: TopicKind) -> int:
        return self._seq.take(kind)

    def _status(self, state: Literal["online", "offline"]) -> StatusV1:
        return StatusV1(
            device_id=self.device_id,
            seq=self._seq.take(TopicKind.STATUS),
            ts=time.time(),
            state=state,
            agent_version=edgefleet.__version__,
            profile=self.profile,
            model=self._model,
        )

    def _on_connect(
        self, client: mqtt.Client, _userdata: object, _flags: object, reason: ReasonCode, _props: object
    ) -> None:
        if reason.is_failure:
            log.error("mqtt.refused", extra={"reason": str(reason)})
            return
        # publish without waiting: this is paho's network thread
        client.publish(
            topic(self.device_id, TopicKind.STATUS), self._status("online").model_dump_json(), qos=1, retain=True
        )
        self._connected.set()
        log.info("mqtt.connected", extra={"device": self.device_id})

    def _on_disconnect(self, *_args: object) -> None:
        self._connected.clear()
        log.info("mqtt.disconnected", extra={"device": self.device_id})

"""Commands to devices over MQTT (``ef/v1/{device}/commands``), numbered per device in the database."""

from __future__ import annotations

import logging
import threading
import time
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy.orm import Session

from edgefleet.messages import AssignCommand, CommandV1, KeysCommand, RollbackCommand, UploadSamplesCommand
from edgefleet.topics import TopicKind, topic
from fleet_server.db.models import Device
from fleet_server.settings import MqttSettings

__all__ = ["CommandPublisher"]

log = logging.getLogger(__name__)


class CommandPublisher:
    """One MQTT connection for the server's commands; paho queues what is published while it reconnects.

    An assignment is retained, so a device that is offline when its wave starts gets it when it connects
    again (the agent ignores an assignment it already holds); a rollback is not, so it is never replayed
    after a later assignment.
    """

    def __init__(self, mqtt_settings: MqttSettings) -> None:
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"fleet-commands-{uuid.uuid4().hex[:8]}")
        if mqtt_settings.username is not None:
            password = mqtt_settings.password.get_secret_value() if mqtt_settings.password else None
            self._client.username_pw_set(mqtt_settings.username, password)
        self._settings = mqtt_settings
        self._connected = threading.Event()
        self._client.on_connect = lambda *_args: self._connected.set()

    def start(self, timeout_s: float = 10.0) -> None:
        self._client.connect_async(self._settings.host, self._settings.port)
        self._client.loop_start()
        if not self._connected.wait(timeout_s):
            log.warning("commands.not_connected", extra={"host": self._settings.host, "port": self._settings.port})

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def send(
        self,
        session: Session,
        device: Device,
        command: AssignCommand | RollbackCommand | UploadSamplesCommand | KeysCommand,
    ) -> None:
        """Number ``command`` for ``device`` (flushed into ``session``) and publish it at QoS 1."""
        device.command_seq += 1
        session.flush()
        message = CommandV1(device_id=device.id, seq=device.command_seq, ts=time.time(), command=command)
        retain = isinstance(command, AssignCommand)
        self._client.publish(
            topic(device.id, TopicKind.COMMANDS), message.model_dump_json(by_alias=True), qos=1, retain=retain
        )
        log.info("commands.sent", extra={"device": device.id, "action": command.action, "seq": device.command_seq})

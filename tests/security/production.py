"""A fleet server in production broker mode with a real Mosquitto started on the configuration the server wrote."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from fleet_server import MqttSettings, ServerHandle, ServerSettings
from fleet_server.auth import read_token_file
from fleet_server.broker_auth import COMMANDS_USER, INGEST_USER, MosquittoAccounts
from fleet_server.settings import MosquittoSettings
from tests.support import free_port, wait_until

__all__ = ["Client", "Production", "production_fleet", "server_client"]


@dataclass
class Production:
    """The running pair: the server, Mosquitto's two ports, the CA devices trust, and the server's own logins."""

    server: ServerHandle
    http: httpx.Client
    local_port: int
    tls_port: int
    ca_file: Path
    server_logins: dict[str, str]
    broker_log: Path

    def enroll(self, device_id: str) -> dict[str, str]:
        """Enroll ``device_id``: its API token id and token, MQTT username and password."""
        provisioning = self.http.post("/api/v1/provisioning-tokens", json={"uses": 1})
        assert provisioning.status_code == 201, provisioning.text
        enrolled = self.http.post(
            "/api/v1/devices/enroll",
            json={"provisioning_token": provisioning.json()["token"], "device_id": device_id, "profile": "rpi4b"},
        )
        assert enrolled.status_code == 201, enrolled.text
        body = enrolled.json()
        return {"token_id": body["token_id"], "token": body["token"], **body["mqtt"]}


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def production_fleet(root: Path, trusted_keys: list[Path] | None = None) -> Iterator[Production]:
    """Files written by the server's own code, Mosquitto started on them (pid file: the server's SIGHUP target), then
    the server; everything stopped afterwards."""
    local_port, tls_port = free_port(), free_port()
    folder, pid_file = root / "mosquitto", root / "mosquitto.pid"
    mosquitto_settings = MosquittoSettings(
        enabled=True, config_dir=folder, tls_port=tls_port, tls_bind="127.0.0.1", pid_file=pid_file
    )
    accounts = MosquittoAccounts(mosquitto_settings, folder, local_port)
    tls, _logins = accounts.prepare()
    main = root / "mosquitto.conf"
    # the suite runs as root, and Mosquitto started as root drops to the user "mosquitto", which could not read
    # the 0600 files the server wrote; a production broker runs as the server's user or its group (docs/production.md)
    main.write_text(f"user root\npid_file {pid_file}\npersistence false\nlog_type all\ninclude_dir {folder}\n")
    broker_log = root / "mosquitto.log"
    with broker_log.open("wb") as log_file:
        broker = subprocess.Popen(["/usr/sbin/mosquitto", "-c", str(main)], stdout=log_file, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: broker.poll() is not None or (_accepts(local_port) and _accepts(tls_port)))
            assert broker.returncode is None, broker_log.read_text()
            settings = ServerSettings(
                data_dir=root / "server",
                http_port=free_port(),
                mqtt=MqttSettings(port=local_port, embedded_broker=False),
                mosquitto=mosquitto_settings,
                trusted_keys=trusted_keys or [],
                rollout_tick_s=0.2,
            )
            server = ServerHandle(settings)
            server.start()
            try:
                admin = {"Authorization": f"Bearer {read_token_file(settings.resolved_admin_token_file())}"}
                with httpx.Client(base_url=server.base_url, headers=admin, timeout=10) as http:
                    logins = json.loads((folder / "server-logins.json").read_text())
                    yield Production(server, http, local_port, tls_port, tls.ca_cert, logins, broker_log)
            finally:
                server.stop()
        finally:
            broker.terminate()
            broker.wait(10)


@dataclass
class Client:
    """A bare paho client that records its connection answers, disconnections and the messages it receives."""

    client_id: str
    port: int
    username: str | None = None
    password: str | None = None
    ca_file: Path | None = None
    connects: list[ReasonCode] = field(default_factory=list)
    disconnects: int = 0
    received: list[tuple[str, bytes]] = field(default_factory=list)
    subscribed: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.paho = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id)
        if self.username is not None:
            self.paho.username_pw_set(self.username, self.password)
        if self.ca_file is not None:
            self.paho.tls_set(ca_certs=str(self.ca_file), cert_reqs=ssl.CERT_REQUIRED)
        self.paho.on_connect = lambda _c, _u, _f, reason, _p: self.connects.append(reason)
        self.paho.on_disconnect = self._on_disconnect
        self.paho.on_message = lambda _c, _u, message: self.received.append((message.topic, bytes(message.payload)))
        self.paho.on_subscribe = lambda *_args: self.subscribed.set()

    def _on_disconnect(self, *_args: object) -> None:
        self.disconnects += 1

    def connect(self) -> ReasonCode:
        """Connect once (no automatic reconnection) and return the broker's answer."""
        self.paho.reconnect_delay_set(min_delay=60, max_delay=60)
        self.paho.connect("127.0.0.1", self.port)
        self.paho.loop_start()
        wait_until(lambda: self.connects or self.disconnects)
        return self.connects[-1] if self.connects else ReasonCode(PacketTypes.CONNACK, "Unspecified error")

    def subscribe(self, pattern: str) -> None:
        self.subscribed.clear()
        self.paho.subscribe(pattern, qos=1)
        assert self.subscribed.wait(10)

    def publish(self, topic: str, payload: bytes) -> None:
        self.paho.publish(topic, payload, qos=1).wait_for_publish(10)

    def close(self) -> None:
        self.paho.disconnect()
        self.paho.loop_stop()


def server_client(production: Production, user: str) -> Client:
    """A client with one of the server's own logins (INGEST_USER or COMMANDS_USER), on the loopback listener."""
    assert user in (INGEST_USER, COMMANDS_USER)
    return Client(f"test-{user}", production.local_port, user, production.server_logins[user])

"""Production broker mode against a real Mosquitto 2.0 on the files the server wrote: each device reaches only its
own topics, anonymous and unknown logins are refused, a revoked device is cut off at once, and a device with its
own login over TLS (verified against the server's CA) reports to ingest."""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent import AgentSettings, BrokerSettings, SimulatedSourceSettings
from fleet_server.broker_auth import COMMANDS_USER, INGEST_USER
from tests.agent.tiny import TinyPackage, build_tiny_package
from tests.agent.update_support import serving
from tests.security.production import Client, Production, production_fleet, server_client
from tests.support import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> TinyPackage:
    return build_tiny_package(tmp_path_factory.mktemp("package"))


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory, package: TinyPackage) -> Iterator[Production]:
    with production_fleet(tmp_path_factory.mktemp("production"), [package.public_key]) as running:
        yield running


@contextlib.contextmanager
def connected(client: Client) -> Iterator[Client]:
    reason = client.connect()
    assert not reason.is_failure, f"{client.client_id}: {reason}"
    try:
        yield client
    finally:
        client.close()


def device(production: Production, login: dict[str, str]) -> Client:
    """A device's own client: its login, over TLS, verifying the broker with the server's CA."""
    return Client(login["username"], production.tls_port, login["username"], login["password"], production.ca_file)


def test_a_device_cannot_publish_on_another_devices_topics(production: Production) -> None:
    a, b = production.enroll("acl-a"), production.enroll("acl-b")
    with connected(server_client(production, INGEST_USER)) as ingest, connected(device(production, a)) as dev_a:
        ingest.subscribe("ef/v1/+/#")
        for kind in ("status", "telemetry", "events"):
            dev_a.publish(f"ef/v1/acl-b/{kind}", b"forged by a")
        # the same connection's next message arrives after the forged ones would have: when it is there, they are not
        dev_a.publish("ef/v1/acl-a/telemetry", b"a's own")
        wait_until(lambda: ("ef/v1/acl-a/telemetry", b"a's own") in ingest.received)
        assert [t for t, _ in ingest.received if "acl-b" in t] == []
    assert b["username"] == "acl-b"


def test_a_device_cannot_read_another_devices_commands(production: Production) -> None:
    a, _b = production.enroll("cmd-a"), production.enroll("cmd-b")
    with connected(server_client(production, COMMANDS_USER)) as commands, connected(device(production, a)) as dev_a:
        dev_a.subscribe("ef/v1/cmd-b/commands")
        dev_a.subscribe("ef/v1/+/commands")
        dev_a.subscribe("ef/v1/cmd-a/commands")
        commands.publish("ef/v1/cmd-b/commands", b"for b")
        commands.publish("ef/v1/cmd-a/commands", b"for a")
        wait_until(lambda: any(payload == b"for a" for _, payload in dev_a.received))
        assert [payload for _, payload in dev_a.received if payload == b"for b"] == []


def test_a_device_cannot_publish_commands_nor_the_publisher_forge_reports(production: Production) -> None:
    a = production.enroll("cmd-forger")
    with connected(server_client(production, INGEST_USER)) as ingest, connected(device(production, a)) as dev_a:
        ingest.subscribe("ef/v1/+/#")
        with connected(server_client(production, COMMANDS_USER)) as commands:
            commands.publish("ef/v1/cmd-forger/telemetry", b"forged by the publisher")
        dev_a.subscribe("ef/v1/cmd-forger/commands")
        dev_a.publish("ef/v1/cmd-forger/commands", b"a command from a device")
        dev_a.publish("ef/v1/cmd-forger/events", b"marker")
        wait_until(lambda: ("ef/v1/cmd-forger/events", b"marker") in ingest.received)
        assert [p for _, p in ingest.received if p != b"marker"] == []
        assert [p for _, p in dev_a.received if p == b"a command from a device"] == []


@pytest.mark.parametrize("listener", ["local", "tls"])
def test_anonymous_and_unknown_logins_are_refused(production: Production, listener: str) -> None:
    port, ca = (production.local_port, None) if listener == "local" else (production.tls_port, production.ca_file)
    anonymous = Client(f"anon-{listener}", port, ca_file=ca)
    assert anonymous.connect().is_failure
    anonymous.close()
    production.enroll(f"guess-{listener}")
    guesser = Client(f"guess-{listener}", port, f"guess-{listener}", "not-the-password", ca)
    assert guesser.connect().is_failure
    guesser.close()


def test_the_broker_certificate_verifies_only_with_the_servers_ca(production: Production) -> None:
    trusting = ssl.create_default_context(cafile=str(production.ca_file))
    with (
        socket.create_connection(("127.0.0.1", production.tls_port)) as raw,
        trusting.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
    stranger = ssl.create_default_context()  # the system's CAs, none of which signed this broker
    with (
        socket.create_connection(("127.0.0.1", production.tls_port)) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        stranger.wrap_socket(raw, server_hostname="127.0.0.1")


def test_a_revoked_device_is_disconnected_and_refused(production: Production) -> None:
    a = production.enroll("revoked")
    dev = device(production, a)
    with connected(dev):
        assert production.http.delete(f"/api/v1/tokens/{a['token_id']}").status_code == 204
        # Mosquitto 2 re-reads the password file on the server's SIGHUP and drops clients whose login is gone
        wait_until(lambda: dev.disconnects >= 1, timeout_s=10)
    again = device(production, a)
    assert again.connect().is_failure
    again.close()


def test_an_agent_with_its_own_login_over_tls_reports_to_ingest(
    production: Production, package: TinyPackage, tmp_path: Path
) -> None:
    login = production.enroll("tls-agent")
    settings = AgentSettings(
        device_id="tls-agent",
        profile="rpi4b",
        data_dir=tmp_path / "agent",
        broker=BrokerSettings(
            host="127.0.0.1",
            port=production.tls_port,
            username=login["username"],
            password=login["password"],
            tls=True,
            ca_file=production.ca_file,
        ),
        package=package.path,
        trusted_keys=[package.public_key],
        telemetry_interval_s=0.2,
        source=SimulatedSourceSettings(windows_per_s=50),
    )

    def online() -> bool:
        devices = production.http.get("/api/v1/devices").json()
        return any(d["id"] == "tls-agent" and d["state"] == "online" and d["telemetry_messages"] for d in devices)

    with serving(settings):
        wait_until(online, timeout_s=20)

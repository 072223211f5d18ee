"""The agent's connection: jittered reconnection backoff, TLS with client certificates, and a clean SIGTERM."""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edge_agent import BrokerSettings, load_settings
from edge_agent.backoff import Backoff
from edge_agent.mqtt import Link
from edge_agent.outbox import Outbox
from edge_agent.sequence import Sequences, spent
from edgefleet.errors import ConfigError
from edgefleet.messages import StatusV1, TelemetryV1
from edgefleet.topics import TopicKind
from tests.agent.conftest import Subscriber, TinyPackage, running_amqtt
from tests.support import free_port


@pytest.mark.unit
def test_backoff_delays_are_bounded_growing_and_jittered() -> None:
    schedules = []
    for seed in range(200):
        backoff = Backoff(0.5, 8.0, rng=random.Random(seed))
        schedules.append([backoff.next_delay_s() for _ in range(10)])
    for attempt in range(10):
        ceiling = min(8.0, 0.5 * 2**attempt)
        delays = [schedule[attempt] for schedule in schedules]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)  # bounded: never past max_s, never below half
        assert len(set(delays)) == len(delays)  # jittered: 200 devices, 200 different delays
    means = [sum(s[a] for s in schedules) / len(schedules) for a in range(10)]
    assert means[:5] == sorted(means[:5])  # growing: doubling until max_s
    assert means[0] * 8 < means[4]


@pytest.mark.unit
def test_backoff_starts_again_from_the_minimum_after_a_success() -> None:
    backoff = Backoff(1.0, 60.0, rng=random.Random(0))
    for _ in range(8):
        backoff.next_delay_s()
    backoff.reset()
    assert backoff.next_delay_s() <= 1.0


@pytest.mark.unit
@pytest.mark.parametrize(
    ("broker", "words"),
    [
        ('ca_file = "{ca}"', "set broker.tls = true"),
        ("insecure_skip_verify = true", "insecure_skip_verify set without TLS"),
        ('tls = true\nclient_cert = "{ca}"', "set both broker.client_cert and broker.client_key"),
        ('tls = true\nca_file = "{missing}"', "no such file"),
        ("reconnect_min_s = 10\nreconnect_max_s = 5", "exceeds reconnect_max_s"),
    ],
)
def test_bad_connection_settings_say_what_to_fix(tmp_path: Path, broker: str, words: str) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("")
    config = tmp_path / "agent.toml"
    config.write_text(f'device_id = "d-1"\n[broker]\n{broker.format(ca=ca, missing=tmp_path / "nope.pem")}\n')
    with pytest.raises((ConfigError, ValueError), match=words):
        load_settings(config)


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    rogue_ca: Path
    rogue_cert: Path
    rogue_key: Path


def _key_pem(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return path


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    *,
    server: bool = False,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer[0].subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if issuer is None:
        builder = builder.add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    else:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False).add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[1].public_key()), critical=False
        )
        if server:
            names = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256())


def _pem(cert: x509.Certificate, path: Path) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA, a server certificate for 127.0.0.1 and a device certificate it signed; and a rogue CA's device."""
    root = tmp_path_factory.mktemp("pki")
    keys = {name: ec.generate_private_key(ec.SECP256R1()) for name in ("ca", "server", "client", "rogue_ca", "rogue")}
    ca = _cert("edgefleet test CA", keys["ca"], None)
    rogue_ca = _cert("rogue CA", keys["rogue_ca"], None)
    return Pki(
        ca=_pem(ca, root / "ca.pem"),
        server_cert=_pem(_cert("broker", keys["server"], (ca, keys["ca"]), server=True), root / "server.pem"),
        server_key=_key_pem(keys["server"], root / "server.key"),
        client_cert=_pem(_cert("tls-1", keys["client"], (ca, keys["ca"])), root / "client.pem"),
        client_key=_key_pem(keys["client"], root / "client.key"),
        rogue_ca=_pem(rogue_ca, root / "rogue-ca.pem"),
        rogue_cert=_pem(_cert("tls-1", keys["rogue"], (rogue_ca, keys["rogue_ca"])), root / "rogue.pem"),
        rogue_key=_key_pem(keys["rogue"], root / "rogue.key"),
    )


@pytest.fixture
def tls_broker(pki: Pki) -> Iterator[tuple[int, int]]:
    """amqtt with a plain listener (for the test's subscriber) and a TLS one that checks client certificates."""
    for name in ("amqtt", "transitions"):
        logging.getLogger(name).setLevel(logging.CRITICAL)  # refused handshakes are the point of some tests
    plain, tls = free_port(), free_port()
    config: dict[str, Any] = {
        "listeners": {
            "default": {"type": "tcp", "bind": f"127.0.0.1:{plain}"},
            "tls": {
                "type": "tcp",
                "bind": f"127.0.0.1:{tls}",
                "ssl": True,
                "certfile": str(pki.server_cert),
                "keyfile": str(pki.server_key),
                "cafile": str(pki.ca),  # a client certificate, when given, must chain to it
            },
        },
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }
    with running_amqtt(config, "test-amqtt-tls"):
        yield plain, tls


def _link(tmp_path: Path, broker: BrokerSettings) -> Link:
    data = tmp_path / "agent"
    data.mkdir(exist_ok=True)
    outbox = Outbox(data / "outbox.sqlite3", max_messages=100, max_bytes=1 << 20)
    return Link("tls-1", "x86-gateway", broker, Sequences(data / "seq.json"), outbox)


@pytest.mark.integration
def test_connects_over_tls_with_a_client_certificate(pki: Pki, tls_broker: tuple[int, int], tmp_path: Path) -> None:
    plain, tls = tls_broker
    watcher = Subscriber(plain, "ef/v1/tls-1/#")
    settings = BrokerSettings(
        port=tls, tls=True, ca_file=pki.ca, client_cert=pki.client_cert, client_key=pki.client_key
    )
    link = _link(tmp_path, settings)
    try:
        assert link.start(None, timeout_s=10)
        link.publish_telemetry(
            TelemetryV1(
                device_id="tls-1", seq=link.next_seq(TopicKind.TELEMETRY), ts=1.0, interval_s=1.0, inference_count=3
            )
        )
        assert StatusV1.model_validate_json(watcher.wait_for("ef/v1/tls-1/status")[0][0]).state == "online"
        telemetry = TelemetryV1.model_validate_json(watcher.wait_for("ef/v1/tls-1/telemetry")[0][0])
        assert telemetry.inference_count == 3
    finally:
        link.close()
        watcher.close()


@pytest.mark.integration
@pytest.mark.parametrize(
    "mistake",
    [
        # paho-mqtt 2.2's _ssl_wrap_socket leaves the socket of a failed handshake to the garbage collector,
        # which warns (ResourceWarning); the agent just retries. Drop the mark once paho closes that socket.
        pytest.param(
            "broker signed by another CA",
            marks=pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
        ),
        "device certificate from a rogue CA",
    ],
)
def test_refuses_a_tls_peer_it_cannot_verify(
    pki: Pki, tls_broker: tuple[int, int], tmp_path: Path, mistake: str
) -> None:
    _plain, tls = tls_broker
    if mistake == "broker signed by another CA":
        settings = BrokerSettings(port=tls, tls=True, ca_file=pki.rogue_ca)
    else:
        settings = BrokerSettings(
            port=tls, tls=True, ca_file=pki.ca, client_cert=pki.rogue_cert, client_key=pki.rogue_key
        )
    link = _link(tmp_path, settings)
    try:
        assert not link.start(None, timeout_s=2)
    finally:
        link.close()


@pytest.mark.integration
def test_sigterm_finishes_the_interval_says_offline_and_exits_0(
    tiny_package: TinyPackage, tmp_path: Path, mqtt_broker: int, subscribe: Any
) -> None:
    watcher = subscribe("ef/v1/term-1/#")
    data_dir = tmp_path / "agent"
    config = tmp_path / "agent.toml"
    config.write_text(
        f'device_id = "term-1"\ndata_dir = "{data_dir}"\npackage = "{tiny_package.path}"\n'
        f'trusted_keys = ["{tiny_package.public_key}"]\ntelemetry_interval_s = 0.2\n'
        f"[broker]\nport = {mqtt_broker}\n[source]\nwindows_per_s = 50\n"
    )
    agent = subprocess.Popen(
        [Path(sys.executable).parent / "edgefleet-agent", "run", "--config", str(config)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        watcher.wait_for("ef/v1/term-1/telemetry", 2, timeout_s=60)
        agent.send_signal(signal.SIGTERM)
        _, stderr = agent.communicate(timeout=30)
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait(10)
    assert agent.returncode == 0, stderr
    served = int(stderr.rsplit("stopped after ", 1)[1].split()[0])

    sent = spent(data_dir, TopicKind.TELEMETRY)
    telemetry = [TelemetryV1.model_validate_json(p) for p, _ in watcher.wait_for("ef/v1/term-1/telemetry", sent)]
    assert [t.seq for t in telemetry] == list(range(sent))  # the last, partial interval arrived too
    assert sum(t.inference_count for t in telemetry) == served > 0
    late = subscribe("ef/v1/term-1/status")  # the retained status a newcomer sees
    assert StatusV1.model_validate_json(late.wait_for("ef/v1/term-1/status")[0][0]).state == "offline"

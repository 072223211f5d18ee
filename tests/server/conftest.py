"""A real fleet server (uvicorn, embedded amqtt broker) on free ports, per test, on SQLite and on PostgreSQL; one that
trusts a key; a throwaway PostgreSQL cluster and a Mosquitto broker for the tests that run ingest workers apart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgefleet.signing import generate_keys, load_private_key
from fleet_server import MqttSettings, ServerHandle, ServerSettings
from fleet_server.auth import read_token_file
from tests.infra import PostgresCluster, mosquitto, postgres_cluster
from tests.support import free_port


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """One PostgreSQL cluster for the session (about 0.6 s to start); each test takes a fresh database from it."""
    with postgres_cluster() as cluster:
        yield cluster


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database: a SQLite file in ``tmp_path``, or a new database in the session's PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fleet.db'}"
    cluster: PostgresCluster = request.getfixturevalue("postgres")  # started only when a test asks for PostgreSQL
    return cluster.create_database()


@pytest.fixture
def mosquitto_port(tmp_path: Path) -> Iterator[int]:
    """A Mosquitto broker of its own for the test, on a free port; yields the port."""
    with mosquitto(tmp_path) as port:
        yield port


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[ServerHandle]:
    settings = ServerSettings(
        data_dir=tmp_path / "server",
        database_url=database_url,
        http_port=free_port(),
        mqtt=MqttSettings(port=free_port()),
        offline_after_s=60,
    )
    handle = ServerHandle(settings)
    handle.start()
    yield handle
    handle.stop()


@pytest.fixture
def signing_key(tmp_path: Path) -> tuple[Ed25519PrivateKey, Path]:
    """A fresh Ed25519 key pair: the private key, and the path of the public key file."""
    private_path, public_path = generate_keys(tmp_path / "keys")
    return load_private_key(private_path), public_path


@pytest.fixture
def registry_server(
    tmp_path: Path, database_url: str, signing_key: tuple[Ed25519PrivateKey, Path]
) -> Iterator[ServerHandle]:
    """A real server that trusts ``signing_key`` and accepts packages up to 64 KiB."""
    settings = ServerSettings(
        data_dir=tmp_path / "server",
        database_url=database_url,
        http_port=free_port(),
        mqtt=MqttSettings(port=free_port()),
        trusted_keys=[signing_key[1]],
        max_package_bytes=64 * 1024,
    )
    handle = ServerHandle(settings)
    handle.start()
    yield handle
    handle.stop()


def admin_headers(server: ServerHandle) -> dict[str, str]:
    """The ``Authorization`` header of the admin token the server wrote to its data folder at first start."""
    return {"Authorization": f"Bearer {read_token_file(server.settings.resolved_admin_token_file())}"}


@pytest.fixture
def admin_client(server: ServerHandle) -> Iterator[httpx.Client]:
    """An HTTP client for ``server`` that sends the admin token."""
    with httpx.Client(base_url=server.base_url, headers=admin_headers(server)) as client:
        yield client

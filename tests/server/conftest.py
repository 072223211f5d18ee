"""A real fleet server (uvicorn, embedded amqtt broker, SQLite file) on free ports, per test; one that trusts a key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgefleet.signing import generate_keys, load_private_key
from fleet_server import MqttSettings, ServerHandle, ServerSettings
from tests.support import free_port


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerHandle]:
    settings = ServerSettings(
        data_dir=tmp_path / "server", http_port=free_port(), mqtt=MqttSettings(port=free_port()), offline_after_s=60
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
def registry_server(tmp_path: Path, signing_key: tuple[Ed25519PrivateKey, Path]) -> Iterator[ServerHandle]:
    """A real server that trusts ``signing_key`` and accepts packages up to 64 KiB."""
    settings = ServerSettings(
        data_dir=tmp_path / "server",
        http_port=free_port(),
        mqtt=MqttSettings(port=free_port()),
        trusted_keys=[signing_key[1]],
        max_package_bytes=64 * 1024,
    )
    handle = ServerHandle(settings)
    handle.start()
    yield handle
    handle.stop()

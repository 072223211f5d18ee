"""A real fleet server (uvicorn, embedded amqtt broker, SQLite file) on free ports, per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

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

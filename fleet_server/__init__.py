"""The fleet server: FastAPI over SQLAlchemy, with the embedded MQTT broker and ingest."""

from __future__ import annotations

from fleet_server.app import create_app
from fleet_server.serve import ServerHandle, serve
from fleet_server.settings import MqttSettings, ServerSettings, get_settings

__all__ = ["MqttSettings", "ServerHandle", "ServerSettings", "create_app", "get_settings", "serve"]

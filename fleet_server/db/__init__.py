"""The fleet database: tables, engine and sessions, and Alembic migrations."""

from __future__ import annotations

from fleet_server.db.engine import make_engine, make_session_factory
from fleet_server.db.migrate import upgrade
from fleet_server.db.models import Base, Device, Event, Telemetry

__all__ = ["Base", "Device", "Event", "Telemetry", "make_engine", "make_session_factory", "upgrade"]

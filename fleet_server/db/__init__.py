"""The fleet database: tables, engine and sessions, and Alembic migrations."""

from __future__ import annotations

from fleet_server.db.auth_models import ApiToken, MqttCredential, ProvisioningToken
from fleet_server.db.engine import make_engine, make_session_factory
from fleet_server.db.migrate import upgrade
from fleet_server.db.models import Base, Device, Event, Telemetry
from fleet_server.db.rollout_models import AuditRow, Rollout, RolloutDevice

__all__ = [
    "ApiToken",
    "AuditRow",
    "Base",
    "Device",
    "Event",
    "MqttCredential",
    "ProvisioningToken",
    "Rollout",
    "RolloutDevice",
    "Telemetry",
    "make_engine",
    "make_session_factory",
    "upgrade",
]

"""The credential tables: API tokens, provisioning tokens and per-device MQTT credentials, secrets only hashed."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from fleet_server.db.models import Base

__all__ = ["ApiToken", "MqttCredential", "ProvisioningToken"]


class ApiToken(Base):
    """A bearer token: a person's (admin, operator, viewer) or one device's; ``id`` is its public part."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(128))
    device_id: Mapped[str | None] = mapped_column(ForeignKey("devices.id"), index=True)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ProvisioningToken(Base):
    """A secret that enrolls up to ``uses_left`` devices until ``expires_at``, giving them ``tags`` (and ``profile``)."""

    __tablename__ = "provisioning_tokens"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    uses_left: Mapped[int] = mapped_column(Integer)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    profile: Mapped[str | None] = mapped_column(String(64))


class MqttCredential(Base):
    """A device's broker login; the username is the device id, so the broker's ACL pattern ``%u`` is its own id."""

    __tablename__ = "mqtt_credentials"

    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

"""Who hears that the devices' MQTT logins changed: production broker mode rewrites the broker's password file."""

from __future__ import annotations

from typing import Protocol

from sqlalchemy.orm import Session

__all__ = ["CredentialsListener"]


class CredentialsListener(Protocol):
    """Told after a commit that added or removed a device's MQTT login (``fleet_server.broker_auth`` is one)."""

    def credentials_changed(self, session: Session) -> None:
        """Act on the logins as ``session`` now reads them."""

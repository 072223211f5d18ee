"""The server's signing-key ring, and sending its newest root-signed key list to the devices still on older ones.

A device says in its retained status which list it trusts (``keys_version``); every few seconds the server sends
its list (a ``keys`` command) to each online device that reported an older one, and again after a while if the
device still has not moved, so a device that was offline or missed the command catches up when it is back.
"""

from __future__ import annotations

import logging
import time
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from edgefleet.keylist import KEY_LIST_FILE, KeyList, KeyRing, SignedKeyListV1
from edgefleet.messages import KeysCommand
from edgefleet.signing import load_public_keys
from fleet_server.db.models import Device
from fleet_server.periodic import Periodic
from fleet_server.rollouts.commands import CommandPublisher
from fleet_server.settings import ServerSettings

__all__ = ["KeyDistributor", "server_key_ring"]

log = logging.getLogger(__name__)

_RESEND_AFTER_S: Final = 60.0


def server_key_ring(settings: ServerSettings) -> KeyRing:
    """The keys uploads are verified with: ``trusted_keys`` and the newest list ``root_keys`` signed, kept in the
    data folder; raises InputError when a key file cannot be read."""
    return KeyRing(
        load_public_keys(settings.trusted_keys),
        load_public_keys(settings.root_keys),
        settings.data_dir / KEY_LIST_FILE,
    )


class KeyDistributor:
    """Adopts newer key lists (from an operator, or inside uploaded packages, through the ring) and sends the
    newest one to every online device that reports an older one."""

    def __init__(
        self, keys: KeyRing, sessions: sessionmaker[Session], commands: CommandPublisher, tick_s: float = 5.0
    ) -> None:
        self.keys = keys
        self._sessions = sessions
        self._commands = commands
        self._sent: dict[tuple[str, int], float] = {}
        self._periodic = Periodic("keys.distribute", tick_s, self.send_to_behind)

    def start(self) -> None:
        self._periodic.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._periodic.stop(timeout_s)

    def adopt(self, signed: SignedKeyListV1) -> bool:
        """Adopt ``signed`` if it is newer (True) and send it to the devices at once; raises KeyListError."""
        adopted = self.keys.offer(signed)
        if adopted:
            self.send_to_behind()
        return adopted

    def send_to_behind(self) -> int:
        """Send the newest list to each online device behind it (not again within a minute); how many were sent."""
        current: KeyList | None = self.keys.current
        if current is None:
            return 0
        now = time.monotonic()
        sent = 0
        with self._sessions() as session, session.begin():
            behind = session.scalars(
                select(Device).where(
                    Device.state == "online",
                    Device.keys_version.is_not(None),
                    Device.keys_version < current.version,
                )
            ).all()
            for device in behind:
                if now - self._sent.get((device.id, current.version), -_RESEND_AFTER_S) < _RESEND_AFTER_S:
                    continue
                self._commands.send(session, device, KeysCommand(key_list=current.signed))
                self._sent[(device.id, current.version)] = now
                sent += 1
        if sent:
            log.info("keys.sent", extra={"version": current.version, "devices": sent})
        return sent

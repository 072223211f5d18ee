"""The server's own broker logins (ingest and the command publisher), kept in a 0600 file the server reads back."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from fleet_server.auth.passwords import hash_mqtt_password
from fleet_server.broker_auth._files import write_private
from fleet_server.broker_auth.mosquitto_files import COMMANDS_USER, INGEST_USER, Login

__all__ = ["ServerLogins", "load_or_create_server_logins"]


@dataclass(frozen=True, slots=True)
class ServerLogins:
    """Clear passwords of the server's two logins (the server connects with them) and their password-file lines."""

    ingest_password: str
    commands_password: str
    hashed: tuple[Login, ...]


def load_or_create_server_logins(path: Path) -> ServerLogins:
    """The logins in ``path``, created (mode 0600) on first use; the hashes are salted afresh each start."""
    if path.is_file():
        stored = json.loads(path.read_text())
        ingest, commands = str(stored[INGEST_USER]), str(stored[COMMANDS_USER])
    else:
        ingest, commands = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        write_private(path, json.dumps({INGEST_USER: ingest, COMMANDS_USER: commands}).encode())
    hashed = (Login(INGEST_USER, hash_mqtt_password(ingest)), Login(COMMANDS_USER, hash_mqtt_password(commands)))
    return ServerLogins(ingest, commands, hashed)

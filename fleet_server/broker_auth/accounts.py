"""Production broker mode: keep Mosquitto's password file in step with the database, and make Mosquitto reload it.

Enrollment and revocation call ``credentials_changed`` after their commit. The file is rebuilt from the database
each time (not patched), so it cannot drift from it, and any number of server workers may rebuild it. Mosquitto 2
re-reads the password file and ACL on SIGHUP and disconnects at once every client whose login is gone.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet_server.broker_auth._files import write_private
from fleet_server.broker_auth.mosquitto_files import ListenerPlan, Login, acl_text, config_text, password_file_text
from fleet_server.broker_auth.pki import BrokerTls, ensure_broker_tls
from fleet_server.broker_auth.server_logins import ServerLogins, load_or_create_server_logins
from fleet_server.db.auth_models import MqttCredential
from fleet_server.settings import MosquittoSettings

__all__ = ["MosquittoAccounts"]

log = logging.getLogger(__name__)

_RELOAD_TIMEOUT_S = 10.0


class MosquittoAccounts:
    """The Mosquitto files in ``folder``: TLS, the server's logins, ACL and config at ``prepare``, logins after."""

    def __init__(self, settings: MosquittoSettings, folder: Path, local_port: int) -> None:
        self._settings = settings
        self.folder = folder
        self._listeners = ListenerPlan(local_port, settings.tls_port, settings.tls_bind)
        self._lock = threading.Lock()
        self._server: ServerLogins | None = None

    @property
    def password_file(self) -> Path:
        return self.folder / "passwd"

    @property
    def config_file(self) -> Path:
        return self.folder / "edgefleet.conf"

    def prepare(self) -> tuple[BrokerTls, ServerLogins]:
        """Create what is missing (CA, broker certificate, the server's logins) and write the ACL and config.

        Without a password file yet, one with only the server's logins is written, so Mosquitto can start first.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        tls = ensure_broker_tls(self.folder, self._settings.tls_hostnames)
        self._server = load_or_create_server_logins(self.folder / "server-logins.json")
        write_private(self.folder / "acl", acl_text().encode())
        write_private(self.config_file, config_text(self.folder, tls, self._listeners).encode(), mode=0o644)
        if not self.password_file.exists():
            write_private(self.password_file, password_file_text(self._server.hashed).encode())
        return tls, self._server

    def credentials_changed(self, session: Session) -> None:
        """Rewrite the password file from the database's MQTT logins, then have Mosquitto reload it."""
        if self._server is None:
            raise RuntimeError("MosquittoAccounts.prepare() must run before credentials change")
        rows = session.execute(select(MqttCredential.username, MqttCredential.password_hash)).all()
        logins = [*self._server.hashed, *(Login(username, password_hash) for username, password_hash in rows)]
        with self._lock:
            write_private(self.password_file, password_file_text(logins).encode())
            self._reload()
        log.info("broker_auth.logins_written", extra={"devices": len(rows)})

    def _reload(self) -> None:
        if self._settings.reload_command:
            done = subprocess.run(
                self._settings.reload_command, capture_output=True, text=True, timeout=_RELOAD_TIMEOUT_S, check=False
            )
            if done.returncode != 0:
                log.error(
                    "broker_auth.reload_failed",
                    extra={
                        "command": self._settings.reload_command,
                        "code": done.returncode,
                        "stderr": done.stderr[-500:],
                    },
                )
            return
        if self._settings.pid_file is None:
            log.warning("broker_auth.no_reload", extra={"hint": "set mosquitto.pid_file or mosquitto.reload_command"})
            return
        try:
            os.kill(int(self._settings.pid_file.read_text().strip()), signal.SIGHUP)
        except (OSError, ValueError) as err:
            # Mosquitto not running yet reads the file when it starts; anything else leaves the broker on old logins
            log.error("broker_auth.reload_failed", extra={"pid_file": str(self._settings.pid_file), "error": str(err)})

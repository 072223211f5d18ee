"""A Mosquitto broker the emulator (or a test) starts itself, so a fault can restart it.

It keeps persistence on, as a production broker does: a restart with SIGTERM writes the persistent sessions
(a server's ingest subscribes with one) and their queued messages to disk, and the broker reloads them, so
a restart loses nothing that a device or a subscriber was promised. What the devices queued while it was
down waits in their outboxes.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import IO, Any

from edgefleet.errors import ConfigError
from edgefleet.ports import free_port

__all__ = ["Mosquitto"]

_MOSQUITTO = "/usr/sbin/mosquitto"


class Mosquitto:
    """Mosquitto on ``host``:``port`` (0: a free one), configured and logging in ``folder``; ``start`` it.

    With ``production`` (the folder where the fleet server keeps its production broker files: logins, ACL, TLS
    listener) Mosquitto takes its listeners from there, ``port`` being the server's local listener, and writes
    its pid to ``folder/mosquitto.pid``, where the server sends SIGHUP after each change of logins.

    ``restart(down_s)`` stops it cleanly, keeps it down ``down_s``, and starts it again on the same port.
    Raises ConfigError when Mosquitto is not installed or does not come up.
    """

    def __init__(self, folder: Path, port: int = 0, host: str = "127.0.0.1", production: Path | None = None) -> None:
        binary = shutil.which("mosquitto") or (_MOSQUITTO if Path(_MOSQUITTO).is_file() else None)
        if binary is None:
            raise ConfigError(
                "Mosquitto is not installed", hint="install it (apt-get install mosquitto, or make setup)"
            )
        self._binary = binary
        self.folder = folder
        self.host = host
        self.port = port or free_port()
        self.production = production
        self.pid_file = folder / "mosquitto.pid"
        self.restarts = 0
        self.last_outage: tuple[float, float] | None = None  # wall-clock times the last restart stopped and started it
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._lock = threading.Lock()

    @property
    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout_s: float = 30.0) -> None:
        """Start the broker and wait until it accepts connections."""
        with self._lock:
            if self.is_running:
                return
            self.folder.mkdir(parents=True, exist_ok=True)
            config = self.folder / "mosquitto.conf"
            listeners = (
                f"pid_file {self.pid_file}\ninclude_dir {self.production}\n"
                if self.production is not None
                else f"listener {self.port} {self.host}\nallow_anonymous true\n"
                "max_queued_messages 100000\nmax_inflight_messages 0\n"
            )
            config.write_text(
                f"{listeners}persistence true\npersistence_location {self.folder}/\n"
                # run as root, Mosquitto would switch to its own user, which cannot write its database here
                f"user {pwd.getpwuid(os.geteuid()).pw_name}\n"
            )
            self._log = (self.folder / "mosquitto.log").open("ab")
            self._process = subprocess.Popen(
                [self._binary, "-c", str(config)], stdout=self._log, stderr=subprocess.STDOUT
            )
            deadline = time.monotonic() + timeout_s
            while not _accepts(self.host, self.port):
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self._terminate()
                    raise ConfigError(
                        f"Mosquitto did not start on port {self.port}",
                        hint=f"see {self.folder / 'mosquitto.log'}; is the port taken?",
                    )
                time.sleep(0.05)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the broker cleanly (SIGTERM: it saves its persistent sessions)."""
        with self._lock:
            self._terminate(timeout_s)

    def restart(self, down_s: float = 0.0, stop: threading.Event | None = None) -> None:
        """Stop the broker, keep it down ``down_s`` (or until ``stop`` is set), then start it again."""
        self.stop()
        down_at = time.time()
        if stop is not None:
            stop.wait(down_s)
        else:
            time.sleep(down_s)
        self.start()
        self.last_outage = (down_at, time.time())
        self.restarts += 1

    def __enter__(self) -> Mosquitto:
        self.start()
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.stop()

    def _terminate(self, timeout_s: float = 10.0) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout_s)
            self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None


def _accepts(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False

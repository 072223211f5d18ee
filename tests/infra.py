"""Real services for integration tests, from Debian's packages: a throwaway PostgreSQL cluster and a Mosquitto broker."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
from psycopg import sql

from tests.support import free_port, wait_until

__all__ = ["PostgresCluster", "mosquitto", "postgres_cluster"]

_PG_USER = "postgres"
# settings that make a cluster fast and fragile: right for a test, wrong for anything else
_PG_TEST_OPTIONS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")


class PostgresCluster:
    """A running PostgreSQL cluster on 127.0.0.1 with trust authentication; hands out fresh databases."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._created = 0

    def create_database(self) -> str:
        """A new empty database; returns its SQLAlchemy URL (psycopg 3 driver)."""
        self._created += 1
        name = f"edgefleet_{self._created}"
        with psycopg.connect(host="127.0.0.1", port=self.port, user=_PG_USER, dbname="postgres", autocommit=True) as db:
            db.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return f"postgresql+psycopg://{_PG_USER}@127.0.0.1:{self.port}/{name}"


def _pg_bin(tool: str) -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{tool}"))
    if not found:
        raise FileNotFoundError(f"no /usr/lib/postgresql/*/bin/{tool}: install Debian's postgresql (make debs)")
    return found[-1]  # the newest major version installed


def _as_postgres(*command: str | Path) -> None:
    # initdb and postgres refuse to run as root, and the suite runs as root (as CI does)
    done = subprocess.run(["runuser", "-u", _PG_USER, "--", *map(str, command)], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{command[0]} exited with {done.returncode}: {done.stdout}{done.stderr}")


@contextlib.contextmanager
def postgres_cluster() -> Iterator[PostgresCluster]:
    """Initialise and start a cluster in a new temporary folder; stop it and delete the folder afterwards."""
    # not under pytest's tmp_path: its parents are private to root, and the postgres user must reach the folder
    root = Path(tempfile.mkdtemp(prefix="edgefleet-pg-"))
    shutil.chown(root, _PG_USER, _PG_USER)
    data, port = root / "data", free_port()
    options = " ".join(
        [f"-p {port}", "-c listen_addresses=127.0.0.1", f"-c unix_socket_directories={root}"]
        + [f"-c {option}" for option in _PG_TEST_OPTIONS]
    )
    try:
        _as_postgres(_pg_bin("initdb"), "-D", data, "-U", _PG_USER, "--auth=trust", "-E", "UTF8", "--no-sync")
        _as_postgres(_pg_bin("pg_ctl"), "-D", data, "-l", root / "server.log", "-o", options, "-w", "start")
        try:
            yield PostgresCluster(port)
        finally:
            # immediate: the cluster is deleted next, so nothing needs a checkpoint or waits for open sessions
            _as_postgres(_pg_bin("pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def mosquitto(folder: Path, port: int | None = None) -> Iterator[int]:
    """Mosquitto listening on ``port`` (a free one by default) on loopback, anonymous, without persistence; yields
    the port."""
    port = port or free_port()
    config = folder / "mosquitto.conf"
    config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    with (folder / "mosquitto.log").open("wb") as log:
        broker = subprocess.Popen(["/usr/sbin/mosquitto", "-c", str(config)], stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: broker.poll() is not None or _accepts(port))
            if broker.returncode is not None:
                raise RuntimeError(f"mosquitto exited with {broker.returncode}; see {folder / 'mosquitto.log'}")
            yield port
        finally:
            broker.terminate()
            broker.wait(10)

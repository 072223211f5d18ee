"""The agent's outbox: telemetry and events kept on disk (SQLite) until the broker has acknowledged them."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from edgefleet.errors import AgentError
from edgefleet.topics import TopicKind

__all__ = ["OUTBOX_FILE", "Dropped", "Outbox", "Queued"]

log = logging.getLogger(__name__)

OUTBOX_FILE: Final = "outbox.sqlite3"

# AUTOINCREMENT: ids never come back after the table empties, so id order is send order across restarts.
# `dropped` holds what the bound threw away and no event has reported yet (one row per topic kind); `numbered`
# the seq after the highest each kind stored, which spends a seq in the transaction that stores its message.
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS message (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    topic TEXT NOT NULL,
    seq INTEGER NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS numbered (
    kind TEXT PRIMARY KEY,
    next INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS dropped (
    kind TEXT PRIMARY KEY,
    count INTEGER NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class Queued:
    """One message waiting for the broker's acknowledgement."""

    id: int
    topic: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class Dropped:
    """What the bound threw away since the last report: counts per kind, and the telemetry seqs lost."""

    telemetry: int = 0
    events: int = 0
    first_telemetry_seq: int | None = None
    last_telemetry_seq: int | None = None

    def __bool__(self) -> bool:
        return self.telemetry + self.events > 0


class Outbox:
    """A bounded, ordered, crash-safe queue of outgoing messages in one SQLite file.

    A message stays until ``remove`` (called when the broker acknowledged it), so whatever a crash or a
    power cut interrupts is sent after the restart. Past ``max_messages`` or ``max_bytes`` the oldest
    telemetry goes first (an interval's counts are the cheapest loss); events go only when nothing else is
    left. Every drop is counted until ``put(..., reported=...)`` settles it. Safe to share between threads.
    """

    def __init__(self, path: Path, *, max_messages: int, max_bytes: int) -> None:
        self.path = path
        self._max_messages, self._max_bytes = max_messages, max_bytes
        self._lock = threading.Lock()
        try:
            # autocommit mode: every change below sits in an explicit BEGIN ... COMMIT
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: in WAL mode, fsync the log at every commit, so a message put is on disk
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as err:
            raise AgentError(
                f"cannot open the outbox {path}: {err}",
                hint="check that data_dir is writable and not full; a corrupt outbox file may be deleted, "
                "which loses the messages it held",
            ) from err

    def put(self, kind: TopicKind, topic: str, seq: int, payload: bytes, *, reported: Dropped | None = None) -> None:
        """Append a message (fsynced before it returns), then enforce the bound; raises AgentError when it cannot.

        ``reported``: drops this message reports, taken off the counts in the same transaction, so a report
        is neither lost nor repeated by a crash.
        """
        try:
            with self._lock, self._transaction():
                self._db.execute(
                    "INSERT INTO message (kind, topic, seq, payload) VALUES (?, ?, ?, ?)",
                    (kind.value, topic, seq, payload),
                )
                self._db.execute(
                    "INSERT INTO numbered (kind, next) VALUES (?, ?) "
                    "ON CONFLICT (kind) DO UPDATE SET next = max(next, excluded.next)",
                    (kind.value, seq + 1),
                )
                if reported:
                    self._settle(reported)
                self._enforce_bound()
        except sqlite3.Error as err:
            raise AgentError(
                f"cannot queue {kind.value} seq {seq} in the outbox {self.path}: {err}",
                hint="free space in data_dir, or lower broker.outbox_max_bytes so the outbox fits",
            ) from err

    def numbered(self) -> dict[TopicKind, int]:
        """Per kind, the seq after the highest this outbox ever stored (the floor of ``Sequences``)."""
        with self._lock:
            rows = self._db.execute("SELECT kind, next FROM numbered").fetchall()
        return {TopicKind(kind): int(next_seq) for kind, next_seq in rows}

    def peek(self, *, after_id: int, limit: int) -> list[Queued]:
        """Up to ``limit`` messages with an id above ``after_id``, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, topic, payload FROM message WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit)
            ).fetchall()
        return [Queued(row_id, topic, bytes(payload)) for row_id, topic, payload in rows]

    def remove(self, ids: Collection[int]) -> None:
        """Forget the messages the broker acknowledged; ids already gone (dropped, or acked twice) are skipped."""
        if not ids:
            return
        with self._lock, self._transaction():
            self._db.executemany("DELETE FROM message WHERE id = ?", [(row_id,) for row_id in ids])

    def __len__(self) -> int:
        with self._lock:
            return self._totals()[0]

    @property
    def size_bytes(self) -> int:
        """The payload bytes queued, which ``max_bytes`` bounds."""
        with self._lock:
            return self._totals()[1]

    def dropped(self) -> Dropped:
        """What the bound threw away and no ``put(..., reported=...)`` has settled yet."""
        with self._lock:
            rows = {
                kind: (count, first, last)
                for kind, count, first, last in self._db.execute("SELECT kind, count, first_seq, last_seq FROM dropped")
            }
        telemetry = rows.get(TopicKind.TELEMETRY.value)
        events = rows.get(TopicKind.EVENTS.value)
        return Dropped(
            telemetry=telemetry[0] if telemetry else 0,
            events=events[0] if events else 0,
            first_telemetry_seq=telemetry[1] if telemetry else None,
            last_telemetry_seq=telemetry[2] if telemetry else None,
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _totals(self) -> tuple[int, int]:
        count, size = self._db.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM message").fetchone()
        return int(count), int(size)

    def _enforce_bound(self) -> None:
        count, size = self._totals()
        while count > self._max_messages or size > self._max_bytes:
            # the oldest telemetry if there is any, else the oldest event
            row = self._db.execute(
                "SELECT id, kind, seq, LENGTH(payload) FROM message ORDER BY kind = ?, id LIMIT 1",
                (TopicKind.EVENTS.value,),
            ).fetchone()
            row_id, kind, seq, row_size = row
            self._db.execute("DELETE FROM message WHERE id = ?", (row_id,))
            self._db.execute(
                "INSERT INTO dropped (kind, count, first_seq, last_seq) VALUES (?, 1, ?, ?) ON CONFLICT (kind) DO "
                "UPDATE SET count = count + 1, first_seq = MIN(first_seq, excluded.first_seq), "
                "last_seq = MAX(last_seq, excluded.last_seq)",
                (kind, seq, seq),
            )
            count, size = count - 1, size - row_size
            log.warning("outbox.dropped", extra={"kind": kind, "seq": seq, "queued": count})

    def _settle(self, reported: Dropped) -> None:
        for kind, count in ((TopicKind.TELEMETRY, reported.telemetry), (TopicKind.EVENTS, reported.events)):
            if count:
                self._db.execute("UPDATE dropped SET count = count - ? WHERE kind = ?", (count, kind.value))
        if reported.last_telemetry_seq is not None:
            # telemetry dropped after the report was read: its range starts past what was reported
            self._db.execute(
                "UPDATE dropped SET first_seq = MAX(first_seq, ?) WHERE kind = ?",
                (reported.last_telemetry_seq + 1, TopicKind.TELEMETRY.value),
            )
        # a kind fully reported starts a fresh seq range next time
        self._db.execute("DELETE FROM dropped WHERE count <= 0")

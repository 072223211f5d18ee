"""Per-topic message sequence numbers that survive restarts, so the server never mistakes new for repeated, and
counts as lost only what was stored and then not delivered.

A status seq is saved in ``seq.json`` before it is used. A telemetry or event seq is *reserved* and only spent when
the outbox stores its message: the outbox records the highest seq it stored in the same transaction (its
``numbered`` table), and a restart continues after the higher of the two. An agent killed between numbering a
report and storing it therefore leaves no hole in its sequence; the next report takes the same number.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from edge_agent.outbox import OUTBOX_FILE, Outbox
from edgefleet.topics import TopicKind

__all__ = ["SEQ_FILE", "Sequences", "spent"]

log = logging.getLogger(__name__)

SEQ_FILE: Final = "seq.json"


class Sequences:
    """The next ``seq`` for each topic kind; ``floor`` is what the outbox says was spent (``Outbox.numbered``)."""

    def __init__(self, path: Path, floor: Mapping[TopicKind, int] | None = None) -> None:
        self._path = path
        self._lock = threading.Lock()
        try:
            saved = json.loads(path.read_text())
            self._saved = {kind: int(saved.get(kind, 0)) for kind in TopicKind}
        except (OSError, ValueError, AttributeError):
            # no file yet, or one cut short by a power loss: start after anything it could have held
            self._saved = dict.fromkeys(TopicKind, 0)
        floor = floor or {}
        self._next = {kind: max(self._saved[kind], floor.get(kind, 0)) for kind in TopicKind}

    def take(self, kind: TopicKind) -> int:
        """The next number for ``kind``, spent at once (saved before it is returned)."""
        with self._lock:
            seq = self._next[kind]
            self._next[kind] = seq + 1
            self._saved[kind] = seq + 1
            self._save()
            return seq

    def reserve(self, kind: TopicKind) -> int:
        """The next number for ``kind``, spent only once the outbox stores its message (or ``spend`` says so)."""
        with self._lock:
            seq = self._next[kind]
            self._next[kind] = seq + 1
            return seq

    def spend(self, kind: TopicKind, seq: int) -> None:
        """Record ``seq`` as used by a message that went out without the outbox (a full disk)."""
        with self._lock:
            self._saved[kind] = max(self._saved[kind], seq + 1)
            self._save()

    def _save(self) -> None:
        tmp = self._path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps({k.value: v for k, v in self._saved.items()}))
            os.replace(tmp, self._path)
        except OSError as err:
            # a full disk must not stop the device: numbering goes on in memory, and only a restart
            # before the disk is freed could reuse numbers (the server then drops those as repeats)
            log.error("seq.unsaved", extra={"path": str(self._path), "error": str(err)})


def spent(data_dir: Path, kind: TopicKind) -> int:
    """How many ``kind`` seqs the agent keeping its files in ``data_dir`` has spent; read it while the agent is
    stopped (a test, or the soak, counting what must have reached the server)."""
    outbox = Outbox(data_dir / OUTBOX_FILE, max_messages=1, max_bytes=1)
    try:
        floor = outbox.numbered()
    finally:
        outbox.close()
    return Sequences(data_dir / SEQ_FILE, floor).reserve(kind)

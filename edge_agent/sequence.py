"""Per-topic message sequence numbers that survive restarts, so the server never mistakes new for repeated."""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

from edgefleet.topics import TopicKind

__all__ = ["Sequences"]

log = logging.getLogger(__name__)


class Sequences:
    """The next ``seq`` for each topic kind, saved (atomically) before it is used."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        try:
            saved = json.loads(path.read_text())
            self._next = {kind: int(saved.get(kind, 0)) for kind in TopicKind}
        except (OSError, ValueError, AttributeError):
            # no file yet, or one cut short by a power loss: start after anything it could have held
            self._next = dict.fromkeys(TopicKind, 0)

    def take(self, kind: TopicKind) -> int:
        """The next number for ``kind``."""
        with self._lock:
            seq = self._next[kind]
            self._next[kind] = seq + 1
            tmp = self._path.with_suffix(".tmp")
            try:
                tmp.write_text(json.dumps({k.value: v for k, v in self._next.items()}))
                os.replace(tmp, self._path)
            except OSError as err:
                # a full disk must not stop the device: numbering goes on in memory, and only a restart
                # before the disk is freed could reuse numbers (the server then drops those as repeats)
                log.error("seq.unsaved", extra={"path": str(self._path), "error": str(err)})
            return seq

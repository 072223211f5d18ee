"""The content-addressed package store: each package file kept once, under its sha256."""

from __future__ import annotations

import logging
import os
import re
import secrets
import time
from pathlib import Path
from typing import Final

__all__ = ["PackageStore"]

log = logging.getLogger(__name__)

_SHA256: Final = re.compile(r"^[0-9a-f]{64}$")
_SUFFIX: Final = ".efpkg"
_INCOMING: Final = "incoming"
# another server process sharing the folder may be receiving an upload right now: only old leftovers go
_STALE_AFTER_S: Final = 24 * 3600.0


class PackageStore:
    """Packages under ``root/<sha[:2]>/<sha256>.efpkg``.

    Uploads are received in ``root/incoming`` (the same filesystem) and renamed into place once complete
    and flushed, so a crash never leaves a half-written file under a hash name.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._incoming = root / _INCOMING

    @classmethod
    def open(cls, root: Path) -> PackageStore:
        """A store in ``root`` (created when absent), with uploads a crash left behind long ago removed."""
        store = cls(root)
        store._incoming.mkdir(parents=True, exist_ok=True)
        cutoff = time.time() - _STALE_AFTER_S
        for leftover in store._incoming.iterdir():
            if leftover.stat().st_mtime < cutoff:
                leftover.unlink(missing_ok=True)
                log.info("store.leftover_removed", extra={"file": leftover.name})
        return store

    def path(self, sha256: str) -> Path:
        """Where the package with this sha256 is (or would be) kept; raises ValueError on a malformed hash."""
        if _SHA256.fullmatch(sha256) is None:
            raise ValueError(f"{sha256!r} is not a lowercase hex sha256")
        return self.root / sha256[:2] / f"{sha256}{_SUFFIX}"

    def has(self, sha256: str) -> bool:
        """True when the package with this sha256 is in the store."""
        return self.path(sha256).is_file()

    def reserve(self) -> Path:
        """A fresh path in the incoming folder to receive an upload into; the caller removes it if unused."""
        return self._incoming / f"{secrets.token_hex(12)}.part"

    def commit(self, received: Path, sha256: str) -> Path:
        """Move a complete upload into place under ``sha256`` (which the caller computed) and return its path.

        Idempotent: when the hash is already stored, ``received`` is dropped and the stored file kept.
        """
        target = self.path(sha256)
        if target.is_file():
            received.unlink(missing_ok=True)
            return target
        # the bytes reach the disk before the name does, and the new name survives a power cut
        with received.open("rb") as fh:
            os.fsync(fh.fileno())
        if not target.parent.is_dir():
            target.parent.mkdir(exist_ok=True)
            _fsync_dir(self.root)
        os.replace(received, target)
        _fsync_dir(target.parent)
        log.info("store.committed", extra={"sha256": sha256, "size_bytes": target.stat().st_size})
        return target


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

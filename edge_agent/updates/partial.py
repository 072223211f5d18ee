"""The ``.part`` file of a download and its sidecar: the bytes so far, which file and version they are of, and
their fsyncs, so a resume after a cut connection, a crash or a power cut never splices two versions."""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from edge_agent import durable

__all__ = ["PART_SUFFIX", "SIDECAR_SUFFIX", "Partial", "Sidecar", "Target", "cleanup_partials", "discard", "sha256_of"]

log = logging.getLogger(__name__)

PART_SUFFIX: Final = ".part"
SIDECAR_SUFFIX: Final = ".part.json"


@dataclass(frozen=True, slots=True)
class Target:
    """The file a download makes, as its command names it."""

    url: str
    dest: Path
    size_bytes: int
    sha256: str

    @property
    def part(self) -> Path:
        return self.dest.with_name(self.dest.name + PART_SUFFIX)

    @property
    def sidecar(self) -> Path:
        return self.dest.with_name(self.dest.name + SIDECAR_SUFFIX)


class Sidecar(BaseModel):
    """What the .part file holds the bytes of: a resume continues it only for this very file and version."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    url: str
    sha256: str
    size_bytes: int
    etag: str | None  # a strong ETag, or None when the server gave none (then nothing is resumed)


class Partial:
    """The .part file and its sidecar: the bytes so far, their sha256, the ETag they are of, and fsyncs."""

    def __init__(self, job: Target, etag: str | None, fsync_every_bytes: int) -> None:
        self._job = job
        self._fsync_every_bytes = fsync_every_bytes
        self._fh = job.part.open("ab")
        # the length on disk, not a recorded one: a power cut may have cut the file back to its last fsync
        self.size_bytes = self._fh.tell()
        self._hash = sha256_of(job.part, self.size_bytes)
        self._unsynced = 0
        self.etag = etag

    @classmethod
    def open(cls, job: Target, fsync_every_bytes: int) -> Partial:
        """Open the .part to resume it when its sidecar vouches for it; otherwise start from nothing."""
        sidecar = _read_sidecar(job.sidecar)
        if (
            sidecar is None
            or sidecar.etag is None
            or (sidecar.url, sidecar.sha256, sidecar.size_bytes) != (job.url, job.sha256, job.size_bytes)
        ):
            # bytes of another assignment, another server version, or of nobody knows what
            job.part.unlink(missing_ok=True)
            return cls(job, None, fsync_every_bytes)
        partial = cls(job, sidecar.etag, fsync_every_bytes)
        if partial.size_bytes > job.size_bytes:
            partial.begin(None)
        elif partial.size_bytes:
            log.info("update.download_resumed", extra={"file": job.dest.name, "offset": partial.size_bytes})
        return partial

    def __enter__(self) -> Partial:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._fh.close()

    def range_headers(self) -> dict[str, str]:
        """Ask for the rest, and only if the server's file is still the version these bytes are of."""
        if not self.size_bytes or self.etag is None:
            return {}
        return {"Range": f"bytes={self.size_bytes}-", "If-Range": self.etag}

    def begin(self, etag: str | None) -> None:
        """Start over for a whole body of the version ``etag``."""
        if self.size_bytes:
            log.info("update.download_restarted", extra={"file": self._job.dest.name, "dropped": self.size_bytes})
            # emptied (durably) before the sidecar names the new version, so they never disagree
            self._fh.truncate(0)
            self.sync()
            self.size_bytes, self._hash = 0, hashlib.sha256()
        sidecar = Sidecar(url=self._job.url, sha256=self._job.sha256, size_bytes=self._job.size_bytes, etag=etag)
        durable.write_atomic(self._job.sidecar, sidecar.model_dump_json().encode())
        self.etag = etag

    def append(self, data: bytes) -> None:
        self._fh.write(data)
        self._hash.update(data)
        self.size_bytes += len(data)
        self._unsynced += len(data)
        if self._unsynced >= self._fsync_every_bytes:
            self.sync()

    def sync(self) -> None:
        durable.fsync_file(self._fh)
        self._unsynced = 0

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def _read_sidecar(path: Path) -> Sidecar | None:
    try:
        return Sidecar.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return None
    except ValidationError:
        return None  # torn or from another agent version: its .part cannot be trusted


def sha256_of(path: Path, size_bytes: int) -> hashlib._Hash:
    """The sha256 of the file's first ``size_bytes``: a resume hashes the prefix it continues."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while size_bytes and (chunk := fh.read(min(1 << 20, size_bytes))):
            digest.update(chunk)
            size_bytes -= len(chunk)
    return digest


def discard(job: Target) -> None:
    """Remove the .part and its sidecar: their bytes are not worth resuming."""
    for path in (job.part, job.sidecar):
        with contextlib.suppress(OSError):  # a read-only disk keeps them; cleanup_partials tries again
            path.unlink(missing_ok=True)


def cleanup_partials(folder: Path, *, keep: Collection[Path] = ()) -> list[Path]:
    """Remove the .part files and sidecars in ``folder``, except those of the downloads to ``keep``; returns them."""
    suffixes = (PART_SUFFIX, SIDECAR_SUFFIX, SIDECAR_SUFFIX + durable.TEMP_SUFFIX)
    kept = {dest.name + suffix for dest in keep for suffix in suffixes}
    if not folder.is_dir():
        return []
    stale = [p for p in sorted(folder.iterdir()) if p.name.endswith(suffixes) and p.name not in kept]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale

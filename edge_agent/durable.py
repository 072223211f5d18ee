"""Crash-safe file writes: the one module of the agent that calls ``os.fsync``, so tests can cut the power here.

What survives a power cut is what was fsync'd: a file's bytes after ``fsync_file``, a name created, renamed
or removed after ``fsync_dir`` of its folder. Everything that must outlive a crash goes through here.

With ``EDGEFLEET_POWER_CUT_LOG`` set (tests only), ``fsync_file`` and ``rename_atomic`` also append what they
made durable to that log (a path and its fsync'd length; a rename), so a test can cut every file back to what a
real power cut would have kept.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Final

__all__ = ["POWER_CUT_LOG_ENV", "TEMP_SUFFIX", "fsync_dir", "fsync_file", "rename_atomic", "write_atomic"]

POWER_CUT_LOG_ENV: Final = "EDGEFLEET_POWER_CUT_LOG"
_POWER_CUT_LOG: Final = os.environ.get(POWER_CUT_LOG_ENV)

# the temp file of write_atomic: a fixed name per target, so a crash leaves at most one leftover, which the
# next write of that target reuses (one writer per path, as everywhere in the agent)
TEMP_SUFFIX = ".tmp"


def fsync_file(fh: IO[bytes] | IO[str]) -> None:
    """Flush ``fh``'s buffers and fsync it, so the bytes written so far survive a power cut."""
    fh.flush()
    os.fsync(fh.fileno())
    if _POWER_CUT_LOG is not None and isinstance(fh.name, str):
        _note("sync", os.path.abspath(fh.name), str(os.fstat(fh.fileno()).st_size))


def _note(*fields: str) -> None:
    fd = os.open(_POWER_CUT_LOG or os.devnull, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, ("\t".join(fields) + "\n").encode())
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Fsync the folder ``path``, so names created, renamed or removed in it survive a power cut."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def rename_atomic(src: Path, dst: Path) -> None:
    """Move ``src`` over ``dst`` in one step (same filesystem), and make the new name durable."""
    os.replace(src, dst)
    fsync_dir(dst.parent)
    if _POWER_CUT_LOG is not None:
        _note("rename", os.path.abspath(src), os.path.abspath(dst))


def write_atomic(path: Path, data: bytes, mode: int = 0o666) -> None:
    """Replace ``path`` with ``data``: after a crash it holds the old bytes or all the new ones, never a mix.

    ``mode`` as for ``os.open`` (the umask applies): 0o600 keeps a secret from other users from the first byte.
    """
    tmp = path.with_name(path.name + TEMP_SUFFIX)
    try:
        tmp.unlink(missing_ok=True)  # a leftover temp file would keep its own, maybe wider, mode
        # through open() with an opener, so the file keeps its path as its name (the power-cut log records it)
        with open(tmp, "xb", opener=lambda name, flags: os.open(name, flags, mode)) as fh:
            fh.write(data)
            fsync_file(fh)
        rename_atomic(tmp, path)
    except BaseException:
        # a full disk must not also keep a half-written temp file on it
        tmp.unlink(missing_ok=True)
        raise

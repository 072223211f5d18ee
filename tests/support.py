"""Helpers every test may use: wait on a condition instead of sleeping, pick free ports, mount a small disk."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from edgefleet.ports import free_port as free_port

T = TypeVar("T")


def wait_until(condition: Callable[[], T], *, timeout_s: float = 10.0, interval_s: float = 0.05) -> T:
    """Poll ``condition`` until it returns something truthy and return that; on timeout fail with its last value."""
    deadline = time.monotonic() + timeout_s
    last: T = condition()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(f"condition still false after {timeout_s} s; last value: {last!r}")
        time.sleep(interval_s)
        last = condition()
    return last


@contextlib.contextmanager
def small_disk_at(mount: Path, size: str = "2m") -> Iterator[Path]:
    """A real filesystem of ``size`` (tmpfs; the suite runs as root, as CI does) at ``mount`` for the block."""
    mount.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(disk: Path, leave_bytes: int = 0) -> None:
    """Fill ``disk`` to its last byte (dd stops at "No space left on device"), then free ``leave_bytes``."""
    subprocess.run(["dd", "if=/dev/zero", f"of={disk / 'filler'}", "bs=4k"], capture_output=True, check=False)
    if leave_bytes:
        filler = disk / "filler"
        os.truncate(filler, max(0, filler.stat().st_size - leave_bytes))

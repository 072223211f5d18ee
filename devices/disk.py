"""A small disk of its own for one emulated device's data folder, which a fault fills to the last byte.

A tmpfs of a fixed size mounted on the device's data folder (mounting needs root, as CI's containers have):
the agent installs its package there and keeps its outbox, sequence numbers and samples there, so when the
disk fills, every write it makes fails as it would on a full SD card.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import subprocess
from pathlib import Path

from edgefleet.errors import ConfigError

__all__ = ["SmallDisk"]

log = logging.getLogger(__name__)

_FILLER = "filler"


class SmallDisk:
    """A ``size_mb`` tmpfs at ``mount``; ``fill`` it, ``free`` it, ``unmount`` it. Raises ConfigError without root."""

    def __init__(self, mount: Path, size_mb: int) -> None:
        if os.geteuid() != 0:
            raise ConfigError(
                "the disk-full fault mounts a small disk (tmpfs) for the device, which needs root",
                hint="run the emulator as root (as in CI's container), or inject another fault",
            )
        self.mount = mount
        mount.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(mount)], capture_output=True, text=True
        )
        if done.returncode != 0:
            raise ConfigError(
                f"could not mount a {size_mb} MB disk at {mount}: {done.stderr.strip()}", hint="run as root"
            )
        self.is_full = False

    def fill(self) -> None:
        """Write zeros until the disk has no byte left."""
        block = bytes(1 << 16)
        with (self.mount / _FILLER).open("ab", buffering=0) as out:
            while True:
                try:
                    out.write(block)
                except OSError as err:
                    if err.errno != errno.ENOSPC:
                        raise
                    break
            # the last partial block: a full disk has exactly 0 bytes free
            for size in (4096, 512, 1):
                with contextlib.suppress(OSError):
                    while True:
                        out.write(bytes(size))
        self.is_full = True
        log.info("fleet.disk_full", extra={"mount": str(self.mount)})

    def free(self) -> None:
        """Remove what ``fill`` wrote."""
        (self.mount / _FILLER).unlink(missing_ok=True)
        self.is_full = False

    def unmount(self) -> None:
        # lazily: a process of the device may still hold a file open
        subprocess.run(["umount", "-l", str(self.mount)], capture_output=True, check=False)

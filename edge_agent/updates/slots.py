"""Two model slots, ``a`` and ``b``, and the pointer that says which one runs and which one is known good.

The pointer is one small file replaced by an atomic rename with fsync, so a power cut leaves it either
before or after a switch, never in between.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge_agent import durable
from edgefleet.package import OpenedPackage, open_package, read_installed
from edgefleet.signing import TrustedKeys

__all__ = ["Pointer", "Slot", "Slots", "other"]

log = logging.getLogger(__name__)

Slot = Literal["a", "b"]


def other(slot: Slot) -> Slot:
    return "b" if slot == "a" else "a"


class Pointer(BaseModel):
    """Which slot runs, and which one last passed a health window (the one a rollback returns to)."""

    model_config = ConfigDict(extra="forbid")

    active: Slot
    good: Slot
    factory_sha256: str = Field(default="", description="manifest sha256 of the configured package, once installed")


class Slots:
    """The slot folders under ``root`` and their pointer."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._pointer = root / "pointer.json"

    def path(self, slot: Slot) -> Path:
        return self.root / slot

    def pointer(self) -> Pointer | None:
        """The pointer, or None on a device that has never installed a model."""
        try:
            return Pointer.model_validate_json(self._pointer.read_bytes())
        except FileNotFoundError:
            return None
        except ValidationError as err:
            # only something outside the agent writes a bad pointer: start over from the configured package
            log.error("slots.pointer_unreadable", extra={"path": str(self._pointer), "error": str(err)})
            return None

    def point(self, pointer: Pointer) -> None:
        """Make ``pointer`` the device's truth: the switch, the commit and the rollback are each this one rename."""
        self.root.mkdir(parents=True, exist_ok=True)
        durable.write_atomic(self._pointer, pointer.model_dump_json().encode())

    def stage(self, package: Path, slot: Slot, trusted: TrustedKeys) -> OpenedPackage:
        """Extract ``package`` (verified again while it is read) into the emptied ``slot``; every file and folder
        is fsync'd before this returns, so a later step may rely on it after a power cut. Raises PackageError.
        """
        target = self.path(slot)
        shutil.rmtree(target, ignore_errors=True)
        self.root.mkdir(parents=True, exist_ok=True)
        durable.fsync_dir(self.root)
        opened = open_package(package, target, trusted)
        for folder, _dirs, _files in os.walk(target):
            durable.fsync_dir(Path(folder))
        durable.fsync_dir(self.root)
        return opened

    def read(self, slot: Slot, trusted: TrustedKeys) -> OpenedPackage:
        """The package in ``slot``, its signature and every file checked again; raises PackageError."""
        return read_installed(self.path(slot), trusted)

    def clear(self, slot: Slot) -> None:
        """Empty ``slot`` (disk hygiene: an old or half-written model takes no space)."""
        shutil.rmtree(self.path(slot), ignore_errors=True)

"""The update journal: one fsync'd record of the update in progress, so every step can be resumed after a crash."""

from __future__ import annotations

import logging
from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, NonNegativeInt, ValidationError

from edge_agent import durable

__all__ = ["TERMINAL", "Journal", "Step", "UpdateRecord"]

log = logging.getLogger(__name__)

Slot = Literal["a", "b"]


class Step(StrEnum):
    """The last step an update completed; the next one starts from there after a restart."""

    ASSIGNED = "assigned"  # the command is accepted: nothing on disk yet
    DOWNLOADED = "downloaded"  # the package file is complete and has the command's sha256
    VERIFIED = "verified"  # signature, hashes, version, profile, agent version and free disk checked
    STAGED = "staged"  # extracted into the inactive slot, every file fsync'd
    SMOKE_TESTED = "smoke-tested"  # loaded with the real runtime; the test vectors pass
    SWITCHED = "switched"  # the active pointer names the new slot; the health window runs
    COMMITTED = "committed"
    ROLLED_BACK = "rolled-back"
    FAILED = "failed"


TERMINAL = frozenset({Step.COMMITTED, Step.ROLLED_BACK, Step.FAILED})


class UpdateRecord(BaseModel):
    """The update in progress (or the last one), as the journal keeps it."""

    model_config = ConfigDict(extra="forbid")

    rollout_id: str
    package: str = Field(description="name@version, as the command names it")
    url: str = Field(default="", description="empty for a rollback, which downloads nothing")
    sha256: str = ""
    size_bytes: NonNegativeInt = 0
    deadline_ts: NonNegativeFloat = 0.0
    allow_downgrade: bool = False
    step: Step = Step.ASSIGNED
    slot: Slot = Field(description="the slot being installed")
    previous: Slot = Field(description="the slot that ran when the update started")
    health_starts: NonNegativeInt = Field(default=0, description="health windows begun: more than one means a crash")
    baseline_p95_ms: float | None = Field(default=None, description="the previous model's p95 latency at the switch")
    reason: str = Field(default="", description="why it failed or rolled back, machine-readable")
    detail: str = ""
    announced: bool = Field(default=False, description="whether the final event is in the outbox")

    @property
    def finished(self) -> bool:
        return self.step in TERMINAL

    def same_assignment(self, rollout_id: str, sha256: str) -> bool:
        """Whether a command assigns what this record already holds (a duplicate or a retained repeat)."""
        return self.rollout_id == rollout_id and self.sha256 == sha256


class Journal:
    """The record in ``path``, replaced atomically and fsync'd at each step, so a reader sees one step or the next."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> UpdateRecord | None:
        """The last record written, or None when there is none.

        An unreadable record can only come from outside (the rename is atomic), so it is kept aside for a person
        to look at and treated as none: the device then runs whatever its slot pointer says, which was verified.
        """
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            return UpdateRecord.model_validate_json(data)
        except ValidationError as err:
            aside = self.path.with_suffix(".unreadable")
            self.path.replace(aside)
            log.error("update.journal_unreadable", extra={"path": str(aside), "error": str(err)})
            return None

    def write(self, record: UpdateRecord) -> None:
        durable.write_atomic(self.path, record.model_dump_json().encode())

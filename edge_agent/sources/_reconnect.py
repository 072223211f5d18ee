"""Losing and re-opening an input device: the record of losses the agent reads, and the pause between tries."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from edge_agent.sources._errors import SourceLost

__all__ = ["Backoff", "Losses"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Pause before re-opening a lost device: doubles from ``first_s`` up to ``max_s`` while it stays lost."""

    first_s: float = 1.0
    max_s: float = 30.0

    def delay_s(self, attempt: int) -> float:
        return float(min(self.first_s * 2 ** min(attempt, 30), self.max_s))


class Losses:
    """How often a device was lost, whether it is lost now, and the last reason; the agent turns these into events.

    Written by the device thread, read by the agent: each field is one atomic assignment.
    """

    def __init__(self, source: str, backoff: Backoff) -> None:
        self._source = source
        self._backoff = backoff
        self._attempt = 0
        self.count = 0
        self.is_lost = False
        self.last: SourceLost | None = None

    def lost(self, loss: SourceLost) -> float:
        """Record a failed open or read; returns how long to wait before the next try."""
        if not self.is_lost:
            self.count += 1
            self._attempt = 0
        self.is_lost, self.last = True, loss
        delay_s = self._backoff.delay_s(self._attempt)
        self._attempt += 1
        log.warning(
            "source.lost",
            extra={"source": self._source, "error": loss.message, "retry_in_s": delay_s, "losses": self.count},
        )
        return delay_s

    def recovered(self) -> None:
        if self.is_lost:
            log.info("source.recovered", extra={"source": self._source, "losses": self.count})
        self.is_lost = False

"""Real-time pacing of a source that makes its inputs on demand: wait for each one's time, drop the late ones."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["Pacer"]


class Pacer:
    """Slots every ``period_s`` seconds (0: no pacing); an input whose slot passed a whole period ago is late."""

    def __init__(self, period_s: float, stop: threading.Event, clock: Callable[[], float] = time.monotonic) -> None:
        self._period_s = period_s
        self._stop = stop
        self._clock = clock
        self._next_at: float | None = None

    def is_on_time(self) -> bool:
        """Wait for the next input's slot and say True, or say False at once when the slot is long gone (drop it).

        Returns early, with True, when the source is stopped; the caller checks the stop event.
        """
        if not self._period_s:
            return True
        now = self._clock()
        due = now if self._next_at is None else self._next_at
        self._next_at = due + self._period_s
        if now - due >= self._period_s:
            return False  # as on a live sensor, what came due while the agent was busy is gone
        # waiting on the stop event, not sleeping, so shutdown is immediate
        self._stop.wait(max(0.0, due - now))
        return True

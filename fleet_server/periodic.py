"""Run a piece of server work every few seconds on a thread of its own, until stopped."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

__all__ = ["Periodic"]

log = logging.getLogger(__name__)


class Periodic:
    """Calls ``work`` every ``interval_s`` (the first call one interval after ``start``); an exception is logged
    as ``{name}.failed`` and the next interval tries again, so one bad round never ends the work."""

    def __init__(self, name: str, interval_s: float, work: Callable[[], object]) -> None:
        self._name = name
        self._interval_s = interval_s
        self._work = work
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self._work()
            except Exception:
                log.exception(f"{self._name}.failed")

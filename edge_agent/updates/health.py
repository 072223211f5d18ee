"""The health of the running model: recent latencies, and the window in which a new model must prove itself."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from edge_agent.settings import UpdateSettings

__all__ = ["HealthWindow", "Verdict", "Vitals"]

# latencies kept of the running model: enough for a steady p95, little memory
_RECENT = 512
# a window that cannot gather its minimum of answers waits this many window lengths, then judges on what it has
_PATIENCE = 5


@dataclass(frozen=True, slots=True)
class Verdict:
    healthy: bool
    reason: str  # machine-readable, for the event
    detail: str


class HealthWindow:
    """Answers, errors and latencies of a new model since it went live, and the verdict on them."""

    def __init__(self, settings: UpdateSettings, baseline_p95_ms: float | None) -> None:
        self._settings = settings
        self.baseline_p95_ms = baseline_p95_ms
        self.started = time.monotonic()
        self.answers = 0
        self.errors = 0
        self.latencies_ms: list[float] = []

    def record(self, answers: int, errors: int, latency_ms: float | None) -> None:
        self.answers += answers
        self.errors += errors
        if latency_ms is not None and len(self.latencies_ms) < 100_000:
            self.latencies_ms.append(latency_ms)

    def verdict(self) -> Verdict | None:
        """The verdict, or None while the window is still open.

        An error rate over the limit fails as soon as the minimum of answers is in; latency is judged at the
        end of the window, on its p95 against the previous model's on this device.
        """
        s = self._settings
        tried = self.answers + self.errors
        error_rate = self.errors / tried if tried else 0.0
        if tried >= max(s.health_min_inferences, 1) and error_rate > s.max_error_rate:
            return Verdict(
                False,
                "error-rate",
                f"{self.errors} of {tried} inferences failed ({error_rate:.0%}; at most {s.max_error_rate:.0%})",
            )
        elapsed = time.monotonic() - self.started
        if elapsed < s.health_window_s:
            return None
        if tried < s.health_min_inferences and elapsed < s.health_window_s * _PATIENCE:
            return None
        p95 = float(np.percentile(self.latencies_ms, 95)) if self.latencies_ms else None
        if p95 is not None and self.baseline_p95_ms and p95 > s.max_latency_ratio * self.baseline_p95_ms:
            return Verdict(
                False,
                "latency",
                f"p95 latency {p95:.3g} ms is {p95 / self.baseline_p95_ms:.1f}× the previous model's "
                f"{self.baseline_p95_ms:.3g} ms (at most {s.max_latency_ratio:g}×)",
            )
        basis = f"{tried} inferences, {self.errors} errors" + (f", p95 {p95:.3g} ms" if p95 is not None else "")
        return Verdict(True, "healthy", f"healthy over {elapsed:.0f} s: {basis}")


class Vitals:
    """What the serving loop reports of each run; the updater reads the p95 and opens health windows.

    Thread-safe: the agent's loop records, the updater's thread reads.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._recent: deque[float] = deque(maxlen=_RECENT)
        self._window: HealthWindow | None = None

    def record(self, answers: int, errors: int, latency_ms: float | None) -> None:
        with self._lock:
            if latency_ms is not None:
                self._recent.append(latency_ms)
            if self._window is not None:
                self._window.record(answers, errors, latency_ms)

    def p95_ms(self) -> float | None:
        """The running model's recent p95 latency, None before it has served."""
        with self._lock:
            return float(np.percentile(self._recent, 95)) if self._recent else None

    def restart(self, window: HealthWindow | None) -> None:
        """A new model runs: forget the old one's latencies, and watch ``window`` (None: no window)."""
        with self._lock:
            self._recent.clear()
            self._window = window

    def watch(self, window: HealthWindow | None) -> None:
        """Watch the running model through ``window`` (None: stop watching)."""
        with self._lock:
            self._window = window

    @property
    def watching(self) -> bool:
        with self._lock:
            return self._window is not None

    def verdict(self) -> Verdict | None:
        with self._lock:
            return self._window.verdict() if self._window is not None else None

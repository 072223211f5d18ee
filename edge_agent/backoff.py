"""The reconnect schedule: exponential backoff with jitter, so a fleet that lost its broker does not return in step."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["Backoff"]

# 2**60 seconds is far past any sane max_s, and stopping the exponent there keeps the float finite
_MAX_EXPONENT = 60


@dataclass(slots=True)
class Backoff:
    """Delays before each reconnection attempt: the n-th lies in [c/2, c] with c = min(max_s, min_s * 2**n).

    This is "equal jitter": the ceiling doubles like plain exponential backoff, and the random half spreads
    devices that lost the broker at the same moment, so they do not all knock on it at the same instants.
    ``reset`` after a successful connection starts again from ``min_s``.
    """

    min_s: float
    max_s: float
    rng: random.Random = field(default_factory=random.Random)
    _attempt: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.min_s <= self.max_s:
            raise ValueError(f"backoff needs 0 < min_s <= max_s, got min_s={self.min_s}, max_s={self.max_s}")

    def next_delay_s(self) -> float:
        """The delay before the next attempt, in seconds; each call is one more failed attempt."""
        ceiling = min(self.max_s, self.min_s * 2.0 ** min(self._attempt, _MAX_EXPONENT))
        self._attempt += 1
        return self.rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        """Start again from ``min_s``: the last attempt succeeded."""
        self._attempt = 0

"""Simulated machine sensors on the device, from the same physics the model was trained on (numpy only)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt

from edgefleet.sensor_sim import FAULTS, Recording

__all__ = ["SimulatedSensor"]

# a machine changes operating point now and then: a new recording every this many windows
_WINDOWS_PER_RECORDING = 100


class SimulatedSensor:
    """An endless stream of raw windows (channels, length) of one machine with one fault, paced in real time."""

    def __init__(self, fault: str, seed: int, windows_per_s: float, stop: threading.Event) -> None:
        self._fault = FAULTS.index(fault)
        self._rng = np.random.default_rng(seed)
        self._period_s = 1.0 / windows_per_s if windows_per_s > 0 else 0.0
        self._stop = stop

    def __iter__(self) -> Iterator[npt.NDArray[np.float32]]:
        next_at = time.monotonic()
        index = 0
        recording = Recording.random(self._fault, self._rng)
        while not self._stop.is_set():
            if index == _WINDOWS_PER_RECORDING:
                recording, index = Recording.random(self._fault, self._rng), 0
            yield recording.window(index, self._rng)
            index += 1
            if self._period_s:
                next_at += self._period_s
                # waiting on the stop event, not sleeping, so shutdown is immediate
                if self._stop.wait(max(0.0, next_at - time.monotonic())):
                    return

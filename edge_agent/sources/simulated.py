"""Simulated machine sensors on the device, from the same physics the model was trained on (numpy only)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
import numpy.typing as npt

from edge_agent.sources.settings import SimulatedSourceSettings
from edgefleet.sensor_sim import FAULTS, Recording

__all__ = ["SimulatedSensor"]

# a machine changes operating point now and then: a new recording every this many windows
_WINDOWS_PER_RECORDING = 100


class SimulatedSensor:
    """An endless stream of raw windows (channels, length) of one machine with one fault, paced in real time.

    Like a real sensor with a one-window buffer, it does not wait for a slow consumer: windows whose time
    has passed are skipped and counted in ``dropped``.
    """

    def __init__(
        self,
        settings: SimulatedSourceSettings,
        stop: threading.Event,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fault = FAULTS.index(settings.fault)
        self._rng = np.random.default_rng(settings.seed)
        self._period_s = 1.0 / settings.windows_per_s if settings.windows_per_s > 0 else 0.0
        self._stop = stop
        self._clock = clock
        self._dropped = 0

    @property
    def dropped(self) -> int:
        return self._dropped

    def __iter__(self) -> Iterator[npt.NDArray[np.float32]]:
        next_at = self._clock()
        index = 0
        recording = Recording.random(self._fault, self._rng)
        while not self._stop.is_set():
            if index >= _WINDOWS_PER_RECORDING:
                recording, index = Recording.random(self._fault, self._rng), 0
            yield recording.window(index, self._rng)
            index += 1
            if not self._period_s:
                continue
            next_at += self._period_s
            late_s = self._clock() - next_at
            if late_s >= self._period_s:
                # the windows that came due while the agent was busy are gone, as on a real sensor
                missed = math.floor(late_s / self._period_s)
                self._dropped += missed
                index += missed
                next_at += missed * self._period_s
            # waiting on the stop event, not sleeping, so shutdown is immediate
            if self._stop.wait(max(0.0, next_at - self._clock())):
                return

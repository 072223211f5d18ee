"""Make the real backend as slow as an emulated device would be, from its profile's latency factor."""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from edge_agent.backends import Backend

__all__ = ["ProfiledBackend"]


class ProfiledBackend:
    """Runs the real backend, then waits until ``latency_factor`` times its run time has passed.

    It takes this machine as the profiles' reference x86-64 machine, so the latencies an emulated device
    reports are estimates of the real device's, not measurements (a factor at or below 1 adds nothing).
    """

    def __init__(self, inner: Backend, latency_factor: float) -> None:
        self._inner = inner
        self._factor = latency_factor

    @property
    def input_names(self) -> tuple[str, ...]:
        return self._inner.input_names

    @property
    def output_names(self) -> tuple[str, ...]:
        return self._inner.output_names

    def run(self, inputs: Mapping[str, npt.NDArray[np.float32]]) -> dict[str, npt.NDArray[np.float32]]:
        """The real backend's outputs, delivered as late as the emulated device would deliver them."""
        started = time.perf_counter()
        outputs = self._inner.run(inputs)
        elapsed_s = time.perf_counter() - started
        extra_s = (self._factor - 1.0) * elapsed_s
        if extra_s > 0:
            # emulating the device's speed is the point: this thread is the emulated device's CPU
            time.sleep(extra_s)
        return outputs

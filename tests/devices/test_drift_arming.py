"""A scenario holds the emulator's input faults back until it arms them; their clock starts then."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
import pytest

from devices.drifts import Offset
from devices.faults import DriftingSource

pytestmark = pytest.mark.unit


class _Windows:
    dropped = 0

    def __init__(self, armed: threading.Event, arm_at: int) -> None:
        self._armed, self._arm_at = armed, arm_at

    def __iter__(self) -> Iterator[npt.NDArray[np.float32]]:
        for index in range(6):
            if index == self._arm_at:
                self._armed.set()
            yield np.zeros((2, 4), dtype=np.float32)


def test_inputs_pass_unchanged_until_the_faults_are_armed() -> None:
    armed = threading.Event()
    source = DriftingSource(_Windows(armed, arm_at=3), lambda _t: Offset(2.0), seed=0, armed=armed)
    means = [float(window.mean()) for window in source]
    assert means[:3] == [0.0, 0.0, 0.0]
    assert all(mean != 0.0 for mean in means[3:])


def test_without_an_arming_event_the_fault_follows_its_own_clock() -> None:
    source = DriftingSource(_Windows(threading.Event(), arm_at=99), lambda t: Offset(2.0) if t >= 0 else None, seed=0)
    assert all(float(window.mean()) != 0.0 for window in source)

"""Built-in device profiles, and how the emulator makes a backend as slow as the profile says."""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np
import pytest

from devices import PROFILES, ProfiledBackend, get_profile
from edgefleet.errors import InputError

pytestmark = pytest.mark.unit


def test_the_built_in_profiles_are_there_under_their_ids() -> None:
    assert set(PROFILES) == {"rpi-zero-2w", "rpi3b", "rpi4b", "rpi5", "jetson-orin-nano", "x86-gateway"}
    assert all(get_profile(key).id == key for key in PROFILES)


def test_slower_boards_have_larger_latency_factors() -> None:
    factors = [get_profile(p).latency_factor for p in ("rpi-zero-2w", "rpi3b", "rpi4b", "rpi5", "x86-gateway")]
    assert factors == sorted(factors, reverse=True)


def test_an_unknown_profile_names_the_known_ones() -> None:
    with pytest.raises(InputError, match="unknown device profile 'rpi9'") as caught:
        get_profile("rpi9")
    assert "rpi4b" in caught.value.hint


class _Busy:
    """A backend that computes for a fixed time."""

    input_names = ("x",)
    output_names = ("y",)

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        until = time.perf_counter() + 0.005
        while time.perf_counter() < until:
            pass
        return {"y": inputs["x"]}


def test_a_profiled_backend_takes_factor_times_as_long() -> None:
    backend = ProfiledBackend(_Busy(), latency_factor=4.0)
    started = time.perf_counter()
    outputs = backend.run({"x": np.ones(2, dtype=np.float32)})
    assert time.perf_counter() - started >= 4 * 0.005
    assert outputs["y"].tolist() == [1.0, 1.0]
    assert (backend.input_names, backend.output_names) == (("x",), ("y",))

"""Built-in device profiles, and how the emulator makes a backend as slow as the profile says."""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np
import pytest

from devices import PROFILES, ProfiledBackend, get_profile
from devices.profiles import EVIDENCE, REFERENCE_GEEKBENCH6_SINGLE
from edgefleet.errors import InputError
from edgefleet.profile import DeviceProfile

pytestmark = pytest.mark.unit


def test_the_built_in_profiles_are_there_under_their_ids() -> None:
    assert set(PROFILES) == {
        "rpi-zero-2w",
        "rpi3b",
        "rpi4b",
        "rpi5",
        "jetson-orin-nano",
        "x86-gateway",
        "android-phone",
        "iphone",
    }
    assert all(get_profile(key).id == key for key in PROFILES)


@pytest.mark.parametrize("profile_id", sorted(PROFILES))
def test_every_profile_is_complete_and_its_factor_follows_from_its_cited_score(profile_id: str) -> None:
    profile = PROFILES[profile_id]
    # the contract round-trips: what the emulator and the export pipeline read is what a device would send
    assert DeviceProfile.model_validate_json(profile.model_dump_json()) == profile
    assert profile.name
    assert profile.cpu
    assert profile.cores >= 1
    assert profile.memory_mb >= 256
    assert profile.runtimes
    evidence = EVIDENCE[profile_id]
    assert evidence.sources
    assert all(s.startswith("https://") for s in evidence.sources)
    assert evidence.basis
    assert profile.latency_factor == pytest.approx(REFERENCE_GEEKBENCH6_SINGLE / evidence.geekbench6_single, abs=0.01)


def test_the_evidence_covers_exactly_the_profiles() -> None:
    assert set(EVIDENCE) == set(PROFILES)


def test_architectures_and_runtimes_fit_the_device_class() -> None:
    assert {p.id for p in PROFILES.values() if p.arch == "x86_64"} == {"x86-gateway"}
    # a package's ONNX or TFLite artifact must be runnable on every Linux board and on the phones
    assert all({"onnxruntime", "litert"} & set(p.runtimes) for p in PROFILES.values())
    assert "coreml" in get_profile("iphone").runtimes
    assert "coreml" not in get_profile("android-phone").runtimes
    assert "cuda" in get_profile("jetson-orin-nano").accelerators
    assert all(not p.accelerators for p in PROFILES.values() if p.id.startswith("rpi"))


def test_slower_boards_have_larger_latency_factors() -> None:
    order = ("rpi-zero-2w", "rpi3b", "rpi4b", "jetson-orin-nano", "rpi5", "x86-gateway", "android-phone", "iphone")
    factors = [get_profile(p).latency_factor for p in order]
    assert factors == sorted(factors, reverse=True)
    assert len(set(factors)) == len(factors)


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

"""Per-device-profile latency estimates: measured here, scaled to each profile.

A profile's ``latency_factor`` is relative to a reference x86-64 server core. To carry a latency measured
on this machine over to that core, a fixed calibration workload (a small 1-D CNN, built here with
onnx.helper and run single-threaded on onnxruntime) is timed on this machine and compared with its time
on the reference core; the estimate is the measured latency × (reference / here) × the profile's factor.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Final

import numpy as np

from edgefleet.manifest import ArtifactFormat, LatencyEstimate
from edgefleet.profile import DeviceProfile
from export.measure import measure_latency_ms

__all__ = ["REFERENCE_CALIBRATION_MS", "RUNTIMES", "calibration_ms", "estimate_latencies"]

# the calibration workload's median on the reference core (an AMD EPYC server core, onnxruntime 1.32)
REFERENCE_CALIBRATION_MS: Final = 0.088
# the device runtimes that load each artifact format (names as in DeviceProfile.runtimes)
RUNTIMES: Final[dict[ArtifactFormat, frozenset[str]]] = {
    ArtifactFormat.ONNX: frozenset({"onnxruntime"}),
    ArtifactFormat.TFLITE: frozenset({"litert", "tflite-runtime"}),
}


def _calibration_model(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    w1 = rng.normal(0, 0.1, (32, 16, 9)).astype(np.float32)
    w2 = rng.normal(0, 0.1, (32, 32, 9)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[4, 4], strides=[2]),
            helper.make_node("Relu", ["c1"], ["r1"]),
            helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[4, 4], strides=[2]),
            helper.make_node("Relu", ["c2"], ["r2"]),
            helper.make_node("ReduceMean", ["r2"], ["y"], axes=[2], keepdims=0),
        ],
        "calibration",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 512])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 32])],
        [helper.make_tensor(n, TensorProto.FLOAT, w.shape, w.ravel().tolist()) for n, w in (("w1", w1), ("w2", w2))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return path


def calibration_ms(runs: int = 200) -> float:
    """The calibration workload's median single-thread latency on this machine."""
    with tempfile.TemporaryDirectory() as tmp:
        model = _calibration_model(Path(tmp) / "calibration.onnx")
        sample = np.random.default_rng(1).normal(size=(1, 16, 512)).astype(np.float32)
        p50, _ = measure_latency_ms(ArtifactFormat.ONNX, model, sample, runs)
    return p50


def estimate_latencies(
    artifact: str,
    artifact_format: ArtifactFormat,
    p50_ms: float,
    p95_ms: float,
    here_calibration_ms: float,
    profiles: Iterable[DeviceProfile],
) -> list[LatencyEstimate]:
    """Estimates for the profiles that have a runtime for this artifact's format."""
    to_reference = REFERENCE_CALIBRATION_MS / here_calibration_ms
    return [
        LatencyEstimate(
            profile=profile.id,
            artifact=artifact,
            p50_ms=p50_ms * to_reference * profile.latency_factor,
            p95_ms=p95_ms * to_reference * profile.latency_factor,
        )
        for profile in profiles
        if RUNTIMES[artifact_format] & set(profile.runtimes)
    ]

"""Run an exported ONNX artifact with onnxruntime: its outputs on a batch and its single-thread latency."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

__all__ = ["measure_latency_ms", "run_onnx"]


def _session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    # one thread, as on a small device and so that latencies compare across artifacts
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_onnx(path: Path, inputs: npt.NDArray[np.float32], batch_size: int = 64) -> dict[str, npt.NDArray[np.float32]]:
    """The model's outputs by name for ``inputs``, run in batches."""
    session = _session(path)
    name = session.get_inputs()[0].name
    names = [o.name for o in session.get_outputs()]
    batches = [session.run(None, {name: inputs[i : i + batch_size]}) for i in range(0, len(inputs), batch_size)]
    return {n: np.concatenate([b[k] for b in batches]).astype(np.float32) for k, n in enumerate(names)}


def measure_latency_ms(path: Path, sample: npt.NDArray[np.float32], runs: int = 100) -> tuple[float, float]:
    """Median and 95th percentile of single-input latency, after a warm-up."""
    session = _session(path)
    name = session.get_inputs()[0].name
    for _ in range(10):
        session.run(None, {name: sample})
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, {name: sample})
        times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times)), float(np.percentile(times, 95))

"""Run an artifact on the runtime a device would use (the agent's own backends): outputs and latency."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

from edge_agent.backends import LOADERS, Backend
from edgefleet.manifest import ArtifactFormat

__all__ = ["load_artifact", "measure_latency_ms", "run_artifact"]

_WARM_UP = 10


def load_artifact(artifact_format: ArtifactFormat, path: Path) -> Backend:
    """The artifact on one thread, as on a small device and so that latencies compare across artifacts."""
    return LOADERS[artifact_format](path, 1)


def run_artifact(
    artifact_format: ArtifactFormat, path: Path, inputs: npt.NDArray[np.float32], batch_size: int = 64
) -> dict[str, npt.NDArray[np.float32]]:
    """The model's outputs by name for ``inputs``, run in batches."""
    backend = load_artifact(artifact_format, path)
    name = backend.input_names[0]
    batches = [backend.run({name: inputs[i : i + batch_size]}) for i in range(0, len(inputs), batch_size)]
    return {n: np.concatenate([b[n] for b in batches]) for n in backend.output_names}


def measure_latency_ms(
    artifact_format: ArtifactFormat, path: Path, sample: npt.NDArray[np.float32], runs: int = 100
) -> tuple[float, float]:
    """Median and 95th percentile of single-input latency, after a warm-up."""
    backend = load_artifact(artifact_format, path)
    feed = {backend.input_names[0]: sample}
    for _ in range(_WARM_UP):
        backend.run(feed)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        backend.run(feed)
        times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times)), float(np.percentile(times, 95))

"""The label-free accuracy estimate (CBPE) against the true accuracy of a real trained model on shifted data.

A small ``train_pdm`` run; then labelled windows of every class under each shift (a sensor gain change, a new
operating speed, a bearing fault onset on healthy machines) are scored by the trained model, and the estimate the
server would make from what devices send (the mean top probability, ``fleet_server.drift.estimated_accuracy`` on
the confidence counts and sum) is set against the fraction the model got right.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from devices.drifts import BearingFaultOnset, GainChange
from edgefleet.preprocess import prepare_inputs
from edgefleet.sensor_sim import FAULTS
from edgefleet.sketch import CONFIDENCE_EDGES, count_into
from fleet_server.drift import estimated_accuracy
from train import PdmConfig, train_pdm
from train.datasets import synthetic_dataset
from train.evaluate import load_classifier
from train.models import split_outputs
from train.run import load_run

__all__ = ["Estimate", "cbpe_estimates", "trained_estimates"]


@dataclass(frozen=True, slots=True)
class Estimate:
    shift: str
    estimated: float
    true: float

    @property
    def error(self) -> float:
        return self.estimated - self.true


def _probs(run: Path, windows: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    info = load_run(run)
    model = load_classifier(run)
    with torch.no_grad():
        logits, _ = split_outputs(model(torch.from_numpy(prepare_inputs(windows, info.preprocessing))))
        return np.asarray(torch.softmax(logits, dim=1).numpy(), dtype=np.float32)


def _estimate(shift: str, probs: npt.NDArray[np.float32], labels: npt.NDArray[np.int64]) -> Estimate:
    confidence = probs.max(axis=1)
    estimate = estimated_accuracy(
        count_into(CONFIDENCE_EDGES, confidence),
        CONFIDENCE_EDGES,
        confidence_sum=float(confidence.sum()),
        summed=len(confidence),
    )
    return Estimate(shift, float(estimate or 0.0), float((probs.argmax(axis=1) == labels).mean()))


def cbpe_estimates(run: Path, seed: int) -> list[Estimate]:
    """Estimated and true accuracy of the model in ``run`` on fresh data (``seed``), then under each shift."""
    rng = np.random.default_rng(seed + 100)
    fresh = synthetic_dataset(6, 8, seed + 1000)
    new_speed = synthetic_dataset(6, 8, seed + 2000, speed_hz=(42.0, 48.0))
    gain = GainChange(1.3, (0,))
    gained = np.stack([gain.apply(w, rng) for w in fresh.windows])
    normal = fresh.windows[fresh.labels == FAULTS.index("normal")]
    onset = BearingFaultOnset(0.5)
    bearing = np.stack([onset.apply(w, rng) for w in normal])
    bearing_labels = np.full(len(bearing), FAULTS.index("bearing_outer"), dtype=np.int64)
    return [
        _estimate("no shift", _probs(run, fresh.windows), fresh.labels),
        _estimate("gain ×1.3 (accel_x)", _probs(run, gained), fresh.labels),
        _estimate("new speed 42-48 Hz", _probs(run, new_speed.windows), new_speed.labels),
        _estimate("bearing outer-race onset (0.5)", _probs(run, bearing), bearing_labels),
    ]


def trained_estimates(seed: int, *, epochs: int = 30) -> list[Estimate]:
    """``cbpe_estimates`` on a fresh ``train_pdm`` run of ``seed`` (the default data, ``epochs`` epochs)."""
    with tempfile.TemporaryDirectory() as folder:
        run = Path(folder) / "run"
        train_pdm(PdmConfig(epochs=epochs, seed=seed), run)
        return cbpe_estimates(run, seed)

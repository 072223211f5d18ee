"""Write a training run's folder: the checkpoint, the data export needs, metrics, the picture, ``run.json``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from train.metrics import TrainingMetrics
from train.plots import save_confusion_matrix
from train.run import RUN_FILE, RunInfo

__all__ = ["CHECKPOINT_FILE", "CONFUSION_FILE", "DATA_FILE", "METRICS_FILE", "RunArrays", "save_run"]

CHECKPOINT_FILE: Final = "model.pt"
DATA_FILE: Final = "data.npz"
METRICS_FILE: Final = "metrics.json"
CONFUSION_FILE: Final = "confusion_matrix.png"


@dataclass(frozen=True, slots=True)
class RunArrays:
    """Raw inputs export calibrates on (training) and measures on (held-out), with the held-out labels."""

    train_inputs: npt.NDArray[np.generic]
    held_out_inputs: npt.NDArray[np.generic]
    held_out_labels: npt.NDArray[np.int64]
    held_out_rul: npt.NDArray[np.float32] | None = None


def save_run(out: Path, run: RunInfo, model: nn.Module, arrays: RunArrays, metrics: TrainingMetrics) -> RunInfo:
    """Write everything into ``out``; ``run`` must name CHECKPOINT_FILE and DATA_FILE."""
    out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out / CHECKPOINT_FILE)
    named: dict[str, npt.NDArray[np.generic]] = {
        "train_inputs": arrays.train_inputs,
        "held_out_inputs": arrays.held_out_inputs,
        "held_out_labels": arrays.held_out_labels,
    }
    if arrays.held_out_rul is not None:
        named["held_out_rul"] = arrays.held_out_rul
    np.savez_compressed(out / DATA_FILE, allow_pickle=False, **named)
    (out / METRICS_FILE).write_text(metrics.model_dump_json(indent=2))
    save_confusion_matrix(metrics.classification, out / CONFUSION_FILE, f"{run.name}: held-out data")
    (out / RUN_FILE).write_text(run.model_dump_json(indent=2))
    return run

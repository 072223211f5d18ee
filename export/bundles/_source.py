"""What a bundle is built from: the run's description, its device model, and its inputs scaled for the model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from edgefleet.errors import InputError
from edgefleet.preprocess import prepare_inputs
from export.onnx import INPUT_NAME, OUTPUT_NAME, RUL_OUTPUT_NAME
from train.evaluate import load_classifier
from train.models import DeviceOutputs
from train.run import RunInfo, load_run

__all__ = ["LABELS_FILE", "RunSource", "load_source"]

LABELS_FILE = "labels.txt"  # the class labels, one per line, beside the model and packed in a .tflite


@dataclass(frozen=True)
class RunSource:
    """A run ready to convert: ``model`` outputs probabilities (and RUL in its unit) by ``output_names``."""

    run: RunInfo
    model: torch.nn.Module
    input_name: str
    output_names: tuple[str, ...]
    calibration: npt.NDArray[np.float32]  # the training inputs, scaled: what quantization calibrates on

    @property
    def sample(self) -> torch.Tensor:
        """One input of the model's shape (batch 1), for tracing."""
        return torch.from_numpy(self.calibration[:1].copy())

    @property
    def labels_text(self) -> str:
        return "".join(f"{label}\n" for label in self.run.labels)


def load_source(run_dir: Path) -> RunSource:
    """The run at ``run_dir`` as a bundle needs it; raises InputError when it is no complete run."""
    run = load_run(run_dir)
    try:
        with np.load(run_dir / run.calibration) as data:
            train_inputs = data["train_inputs"]
    except (OSError, KeyError, ValueError) as err:
        raise InputError(
            f"{run_dir / run.calibration} holds no training inputs: {err}", hint="train the run again"
        ) from err
    calibration = prepare_inputs(train_inputs, run.preprocessing)
    if len(calibration) == 0:
        raise InputError(f"{run_dir} has no training inputs", hint="train with more data")
    model = DeviceOutputs(load_classifier(run_dir), run.rul.cap if run.rul else None).eval()
    outputs = (OUTPUT_NAME, RUL_OUTPUT_NAME) if run.rul else (OUTPUT_NAME,)
    return RunSource(run, model, INPUT_NAME, outputs, calibration)

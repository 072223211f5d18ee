"""Evaluate a trained run on another dataset, such as an operating condition it never saw."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from edgefleet.errors import InputError
from edgefleet.preprocess import prepare_inputs
from train.datasets import SensorDataset
from train.metrics import ClassificationReport, classification_report
from train.models import build_model, split_outputs
from train.run import input_channels, load_run

__all__ = ["evaluate_run", "load_classifier"]


def load_classifier(run_dir: Path) -> torch.nn.Module:
    """The float model of a run, in eval mode, outputting logits (and the RUL fraction for an RUL head).

    Raises InputError for a broken run.
    """
    run = load_run(run_dir)
    model = build_model(run.architecture, input_channels(run), len(run.labels), run.model_width, run.rul is not None)
    try:
        model.load_state_dict(torch.load(run_dir / run.checkpoint, weights_only=True))
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as err:
        raise InputError(f"the checkpoint of {run_dir} cannot be loaded: {err}", hint="train again") from err
    model.eval()
    return model


def evaluate_run(run_dir: Path, dataset: SensorDataset) -> ClassificationReport:
    """Per-class figures of the run's model on ``dataset``; raises InputError when their labels differ."""
    run = load_run(run_dir)
    if list(dataset.label_names) != run.labels:
        raise InputError(
            f"the dataset's classes {list(dataset.label_names)} are not the run's {run.labels}",
            hint="evaluate on data labelled like the training data",
        )
    model = load_classifier(run_dir)
    x = torch.from_numpy(prepare_inputs(dataset.windows, run.preprocessing))
    with torch.no_grad():
        logits, _ = split_outputs(model(x))
    predicted: npt.NDArray[np.int64] = logits.argmax(1).numpy()
    return classification_report(dataset.labels, predicted, run.labels)

"""Train the predictive-maintenance model on sensor windows and write a run folder.

The model classifies faults; on data with remaining-useful-life targets (runs to failure, C-MAPSS) it
also estimates the RUL, and the run reports its RMSE against a predict-the-mean baseline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from edgefleet.errors import InputError
from edgefleet.manifest import ChannelSpec, SensorPreprocessing
from edgefleet.preprocess import prepare_sensor_windows
from edgefleet.sketch import sensor_features
from train.datasets import SensorDataset, check_dataset, run_to_failure_dataset, synthetic_dataset
from train.extra import (
    FineTune,
    load_extra_data,
    load_fine_tune,
    with_extra,
    with_extra_groups,
    with_extra_labels,
)
from train.fit import EpochReport, Split, class_weights, fit, predict, split_by_recording
from train.metrics import RulReport, TrainingMetrics, classification_report, rul_report
from train.models import SensorCNN
from train.outputs import CHECKPOINT_FILE, DATA_FILE, RunArrays, save_run
from train.reference import build_reference_profile, reference_source
from train.run import RulOutput, RunInfo

__all__ = ["PdmConfig", "train_pdm"]


@dataclass(frozen=True, slots=True)
class PdmConfig:
    name: str = "pump-vibration"
    epochs: int = 30
    patience: int = 8
    recordings_per_class: int = 64
    windows_per_recording: int = 8
    run_to_failure: bool = False  # the default data: runs to failure with RUL targets, not fixed faults
    runs_per_fault: int = 10
    held_out_fraction: float = 0.25
    validation_fraction: float = 0.2
    batch_size: int = 64
    learning_rate: float = 3e-3
    width: int = 24
    seed: int = 0


def train_pdm(
    config: PdmConfig,
    out: Path,
    on_epoch: Callable[[EpochReport], None] | None = None,
    dataset: SensorDataset | None = None,
    *,
    extra: Path | None = None,
    init: Path | None = None,
) -> RunInfo:
    """Train the sensor CNN on ``dataset`` (default: synthetic), evaluate on held-out recordings, write ``out``.

    Recordings are split three ways (train, validation for early stopping, held-out for the figures),
    each recording wholly on one side; the same seed gives the same run. ``extra`` adds the labelled samples of
    a samples folder (a quarter of them held out: ``extra_accuracy``); ``init`` starts from that run's weights
    and scaling, at a third of the learning rate (``extra_accuracy_before`` is the run's own, on the same
    samples). Raises InputError for a dataset that cannot be trained on.
    """
    torch.manual_seed(config.seed)
    data = check_dataset(dataset or _synthetic(config))
    windows, labels, groups = data.windows, data.labels, data.groups
    label_names = list(data.label_names)
    rest_idx, held_idx = split_by_recording(labels, groups, config.held_out_fraction, config.seed)
    fit_part, val_part = split_by_recording(
        labels[rest_idx], groups[rest_idx], config.validation_fraction, config.seed + 1
    )
    # with very few recordings the validation side can be empty: stop early on the training data then
    train_idx = rest_idx[fit_part]
    val_idx = rest_idx[val_part] if len(val_part) else train_idx
    if (extra is not None or init is not None) and data.rul is not None:
        raise InputError(
            "extra samples and fine-tuning train the fault classes only, and this data has RUL targets",
            hint="leave out --run-to-failure (C-MAPSS cannot take --extra-data either)",
        )
    tune = load_fine_tune(init, "pdm", label_names) if init is not None else None
    extra_data = load_extra_data(extra, label_names, windows.shape[1:], config.seed) if extra is not None else None
    preprocessing = _scaling(tune, windows[train_idx], data)
    if tune is not None:  # the same model, a new version of it: its name and width, a gentler learning rate
        config = replace(
            config, name=tune.run.name, width=int(tune.run.model_width), learning_rate=config.learning_rate / 3
        )

    def split(index: npt.NDArray[np.int64]) -> Split:
        x = torch.from_numpy(prepare_sensor_windows(windows[index], preprocessing))
        rul = None if data.rul is None else torch.from_numpy(data.rul.values[index] / np.float32(data.rul.cap))
        return Split(x, torch.from_numpy(labels[index]), rul)

    def raw_split(x: npt.NDArray[np.generic], y: npt.NDArray[np.int64]) -> Split:
        return Split(torch.from_numpy(prepare_sensor_windows(x.astype(np.float32), preprocessing)), torch.from_numpy(y))

    model = SensorCNN(len(data.channels), len(label_names), config.width, rul_head=data.rul is not None)
    extra_metrics: dict[str, float] = {}
    if tune is not None:
        tune.load_into(model)
        if extra_data is not None and len(extra_data.held_labels):
            extra_metrics["extra_accuracy_before"] = _accuracy(
                model, raw_split(extra_data.held_inputs, extra_data.held_labels)
            )
    train_split = split(train_idx)
    if extra_data is not None:
        train_split = raw_split(*extra_data.mixed(windows[train_idx], labels[train_idx]))
    weights = class_weights(train_split.y.numpy(), len(label_names))
    fit(model, train_split, split(val_idx), weights, config, on_epoch)
    if extra_data is not None and len(extra_data.held_labels):
        extra_metrics["extra_accuracy"] = _accuracy(model, raw_split(extra_data.held_inputs, extra_data.held_labels))

    predictions = predict(model, split(held_idx).x)
    probs = predictions.probs
    report = classification_report(labels[held_idx], probs.argmax(1), label_names)
    metrics = {"accuracy": report.accuracy, "macro_f1": report.macro_f1} | extra_metrics
    reference_windows = with_extra(windows[train_idx], extra_data)
    reference_labels = with_extra_labels(labels[train_idx], extra_data)
    source = reference_source(label_names, reference_labels, labels[held_idx])
    # 1: the drift reference describes the nominal class; 0: no label is nominal, it describes all the data
    metrics["reference_nominal"] = float(source.nominal)
    rul = _rul_report(data, train_idx, held_idx, predictions.rul_fraction)
    if rul is not None:
        metrics |= {"rul_rmse": rul.rmse, "rul_baseline_rmse": rul.baseline_rmse}
    run = RunInfo(
        kind="pdm",
        name=config.name,
        labels=label_names,
        preprocessing=preprocessing,
        architecture="sensor-cnn",
        model_width=config.width,
        checkpoint=CHECKPOINT_FILE,
        calibration=DATA_FILE,
        metrics=metrics,
        reference_profile=build_reference_profile(
            sensor_features(reference_windows[source.train_rows], [c.name for c in preprocessing.channels]),
            reference_labels,
            probs,
            source,
            with_extra_groups(groups[train_idx], extra_data)[source.train_rows],
        ),
        rul=None if data.rul is None else RulOutput(cap=data.rul.cap, unit=data.rul.unit),
    )
    arrays = RunArrays(
        with_extra(windows[train_idx], extra_data),
        windows[held_idx],
        labels[held_idx],
        None if data.rul is None else data.rul.values[held_idx],
    )
    return save_run(out, run, model, arrays, TrainingMetrics(classification=report, rul=rul))


def _scaling(tune: FineTune | None, train_windows: npt.NDArray[np.float32], data: SensorDataset) -> SensorPreprocessing:
    """The fine-tuned run's scaling (its weights expect it), or one fitted on the training windows."""
    if tune is None:
        return _fit_scaling(train_windows, data)
    if not isinstance(tune.run.preprocessing, SensorPreprocessing):
        raise InputError("the run to fine-tune is not a sensor model", hint="pass a run of `edgefleet train pdm`")
    return tune.run.preprocessing


def _accuracy(model: torch.nn.Module, data: Split) -> float:
    return float((predict(model, data.x).probs.argmax(1) == data.y.numpy()).mean())


def _synthetic(config: PdmConfig) -> SensorDataset:
    if config.run_to_failure:
        return run_to_failure_dataset(config.runs_per_fault, config.seed)
    return synthetic_dataset(config.recordings_per_class, config.windows_per_recording, config.seed)


def _rul_report(
    data: SensorDataset,
    train_idx: npt.NDArray[np.int64],
    held_idx: npt.NDArray[np.int64],
    fraction: npt.NDArray[np.float32] | None,
) -> RulReport | None:
    if data.rul is None or fraction is None:
        return None
    truth = data.rul.values
    train_mean = float(truth[train_idx].mean())
    return rul_report(truth[held_idx], fraction * data.rul.cap, train_mean, data.rul.cap, data.rul.unit)


def _fit_scaling(train_windows: npt.NDArray[np.float32], data: SensorDataset) -> SensorPreprocessing:
    mean = train_windows.mean(axis=(0, 2), dtype=np.float64)
    std = train_windows.std(axis=(0, 2), dtype=np.float64)
    return SensorPreprocessing(
        channels=[
            ChannelSpec(name=name, unit=unit, mean=float(m), std=float(max(s, 1e-6)))
            for (name, unit), m, s in zip(data.channels, mean, std, strict=True)
        ],
        window_length=train_windows.shape[2],
        sample_rate_hz=data.sample_rate_hz,
    )

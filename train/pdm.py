"""Train the predictive-maintenance classifier on synthetic sensor windows and write a run folder."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from edgefleet.manifest import ChannelSpec, SensorPreprocessing
from edgefleet.preprocess import prepare_sensor_windows
from train.datasets import SensorDataset, check_dataset, synthetic_dataset
from train.metrics import classification_report
from train.models import SensorCNN
from train.plots import save_confusion_matrix
from train.reference import build_reference_profile
from train.run import RUN_FILE, RunInfo

__all__ = ["EpochReport", "PdmConfig", "class_weights", "train_pdm"]

CHECKPOINT_FILE = "model.pt"
DATA_FILE = "data.npz"
METRICS_FILE = "metrics.json"
CONFUSION_FILE = "confusion_matrix.png"


@dataclass(frozen=True, slots=True)
class PdmConfig:
    name: str = "pump-vibration"
    epochs: int = 20
    patience: int = 6
    recordings_per_class: int = 32
    windows_per_recording: int = 8
    held_out_fraction: float = 0.25
    validation_fraction: float = 0.2
    batch_size: int = 64
    learning_rate: float = 3e-3
    width: int = 24
    seed: int = 0


@dataclass(frozen=True, slots=True)
class EpochReport:
    epoch: int
    epochs: int
    loss: float
    validation_loss: float
    validation_accuracy: float


def train_pdm(
    config: PdmConfig,
    out: Path,
    on_epoch: Callable[[EpochReport], None] | None = None,
    dataset: SensorDataset | None = None,
) -> RunInfo:
    """Train the sensor CNN on ``dataset`` (default: synthetic), evaluate on held-out recordings, write ``out``.

    Recordings are split three ways (train, validation for early stopping, held-out for the figures),
    each recording wholly on one side; the same seed gives the same run. Raises InputError for a dataset
    that cannot be trained on.
    """
    torch.manual_seed(config.seed)
    data = check_dataset(
        dataset or synthetic_dataset(config.recordings_per_class, config.windows_per_recording, config.seed)
    )
    windows, labels, groups = data.windows, data.labels, data.groups
    label_names = list(data.label_names)
    rest_idx, held_idx = _split_by_recording(labels, groups, config.held_out_fraction, config.seed)
    fit, val = _split_by_recording(labels[rest_idx], groups[rest_idx], config.validation_fraction, config.seed + 1)
    # with very few recordings the validation side can be empty: stop early on the training data then
    train_idx, val_idx = rest_idx[fit], rest_idx[val] if len(val) else rest_idx[fit]
    preprocessing = _fit_scaling(windows[train_idx], data)
    x_train = torch.from_numpy(prepare_sensor_windows(windows[train_idx], preprocessing))
    y_train = torch.from_numpy(labels[train_idx])
    x_val = torch.from_numpy(prepare_sensor_windows(windows[val_idx], preprocessing))
    y_val = torch.from_numpy(labels[val_idx])
    x_held = torch.from_numpy(prepare_sensor_windows(windows[held_idx], preprocessing))

    model = SensorCNN(len(data.channels), len(label_names), config.width)
    weights = class_weights(labels[train_idx], len(label_names))
    _fit(model, (x_train, y_train), (x_val, y_val), weights, config, on_epoch)

    probs = _predict(model, x_held)
    report = classification_report(labels[held_idx], probs.argmax(1), label_names)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out / CHECKPOINT_FILE)
    np.savez_compressed(
        out / DATA_FILE,
        train_windows=windows[train_idx],
        held_out_windows=windows[held_idx],
        held_out_labels=labels[held_idx],
    )
    (out / METRICS_FILE).write_text(report.model_dump_json(indent=2))
    save_confusion_matrix(report, out / CONFUSION_FILE, f"{config.name}: held-out recordings")
    run = RunInfo(
        kind="pdm",
        name=config.name,
        labels=label_names,
        preprocessing=preprocessing,
        model_width=config.width,
        checkpoint=CHECKPOINT_FILE,
        calibration=DATA_FILE,
        metrics={"accuracy": report.accuracy, "macro_f1": report.macro_f1},
        reference_profile=build_reference_profile(windows[train_idx], labels[train_idx], probs, preprocessing),
    )
    (out / RUN_FILE).write_text(run.model_dump_json(indent=2))
    return run


def _fit(
    model: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    validation: tuple[torch.Tensor, torch.Tensor],
    class_weights: torch.Tensor,
    config: PdmConfig,
    on_epoch: Callable[[EpochReport], None] | None,
) -> None:
    """Train with weighted cross-entropy; stop when validation loss has not improved for ``patience`` epochs
    and keep the best weights."""
    x_train, y_train = train
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.learning_rate, total_steps=config.epochs * -(-len(x_train) // config.batch_size)
    )
    loss_fn = nn.CrossEntropyLoss(weight=class_weights)
    generator = torch.Generator().manual_seed(config.seed)
    best_loss, best_state, stale = float("inf"), copy.deepcopy(model.state_dict()), 0
    for epoch in range(config.epochs):
        model.train()
        order = torch.randperm(len(x_train), generator=generator)
        total = 0.0
        for start in range(0, len(order), config.batch_size):
            batch = order[start : start + config.batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model(x_train[batch]), y_train[batch])
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += loss.item() * len(batch)
        val_loss, val_accuracy = _evaluate(model, validation, loss_fn)
        if on_epoch is not None:
            on_epoch(EpochReport(epoch + 1, config.epochs, total / len(order), val_loss, val_accuracy))
        if val_loss < best_loss:
            best_loss, best_state, stale = val_loss, copy.deepcopy(model.state_dict()), 0
        else:
            stale += 1
            if stale >= config.patience:
                break
    model.load_state_dict(best_state)


def _evaluate(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor], loss_fn: nn.Module) -> tuple[float, float]:
    x, y = data
    model.eval()
    with torch.no_grad():
        logits = model(x)
        return float(loss_fn(logits, y)), float((logits.argmax(1) == y).float().mean())


def class_weights(labels: npt.NDArray[np.int64], classes: int) -> torch.Tensor:
    """Inverse class frequency, mean 1, so a rare fault counts as much as a common one."""
    counts = np.bincount(labels, minlength=classes).astype(np.float64)
    weights = np.divide(1.0, counts, out=np.zeros(classes), where=counts > 0)
    return torch.tensor(weights / weights[counts > 0].mean(), dtype=torch.float32)


def _predict(model: nn.Module, x: torch.Tensor) -> npt.NDArray[np.float32]:
    model.eval()
    with torch.no_grad():
        return torch.softmax(model(x), dim=1).numpy()


def _split_by_recording(
    labels: npt.NDArray[np.int64], groups: npt.NDArray[np.int64], fraction: float, seed: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Kept and split-off indices, with every recording wholly on one side, stratified by class.

    A class with a single recording stays on the kept side, so training sees every class.
    """
    rng = np.random.default_rng(seed + 1)
    held_groups: list[int] = []
    for label in np.unique(labels):
        class_groups = np.unique(groups[labels == label])
        count = min(max(1, round(len(class_groups) * fraction)), len(class_groups) - 1)
        held_groups.extend(rng.choice(class_groups, size=count, replace=False).tolist())
    held = np.isin(groups, held_groups)
    return np.flatnonzero(~held), np.flatnonzero(held)


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

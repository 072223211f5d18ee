"""Train the visual-inspection classifier on synthetic surfaces or a user's images, and write a run folder."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edgefleet.errors import InputError
from edgefleet.manifest import ImagePreprocessing
from edgefleet.preprocess import prepare_images
from edgefleet.sketch import image_features
from train.datasets import ImageDataset
from train.datasets.surfaces import synthetic_images
from train.fit import EpochReport, Split, class_weights, fit, predict, split_by_recording
from train.metrics import TrainingMetrics, classification_report
from train.models import MobileNetLike
from train.outputs import CHECKPOINT_FILE, DATA_FILE, RunArrays, save_run
from train.reference import build_reference_profile, reference_source
from train.run import RunInfo

__all__ = ["VisionConfig", "train_vision"]


@dataclass(frozen=True, slots=True)
class VisionConfig:
    name: str = "surface-inspection"
    size: int = 64
    width: float = 0.5
    per_class: int = 400
    epochs: int = 40
    patience: int = 8
    held_out_fraction: float = 0.2
    validation_fraction: float = 0.15
    batch_size: int = 64
    learning_rate: float = 4e-3
    seed: int = 0


def train_vision(
    config: VisionConfig,
    out: Path,
    on_epoch: Callable[[EpochReport], None] | None = None,
    dataset: ImageDataset | None = None,
) -> RunInfo:
    """Train the MobileNet-style CNN on ``dataset`` (default: synthetic surfaces); raises InputError for bad data."""
    torch.manual_seed(config.seed)
    data = _checked(dataset or synthetic_images(config.per_class, config.size, config.seed))
    images, labels, groups = data.images, data.labels, data.groups
    label_names = list(data.label_names)
    rest, held = split_by_recording(labels, groups, config.held_out_fraction, config.seed)
    fit_part, val_part = split_by_recording(labels[rest], groups[rest], config.validation_fraction, config.seed + 1)
    train_idx = rest[fit_part]
    val_idx = rest[val_part] if len(val_part) else train_idx
    preprocessing = _fit_normalisation(images[train_idx])

    def tensors(index: np.ndarray) -> Split:
        return Split(torch.from_numpy(prepare_images(images[index], preprocessing)), torch.from_numpy(labels[index]))

    model = MobileNetLike(len(label_names), config.width)
    weights = class_weights(labels[train_idx], len(label_names))
    fit(model, tensors(train_idx), tensors(val_idx), weights, config, on_epoch, augment=_flip_and_turn)
    probs = predict(model, tensors(held).x).probs
    report = classification_report(labels[held], probs.argmax(1), label_names)
    # the drift reference describes normal service (train/reference.py); 0 in the metrics: no nominal label
    source = reference_source(label_names, labels[train_idx], labels[held])

    run = RunInfo(
        kind="vision",
        name=config.name,
        labels=label_names,
        preprocessing=preprocessing,
        architecture="mobilenet",
        model_width=config.width,
        checkpoint=CHECKPOINT_FILE,
        calibration=DATA_FILE,
        metrics={"accuracy": report.accuracy, "macro_f1": report.macro_f1, "reference_nominal": float(source.nominal)},
        reference_profile=build_reference_profile(
            image_features(images[train_idx][source.train_rows]),
            labels[train_idx],
            probs,
            source,
            groups[train_idx][source.train_rows],
        ),
    )
    arrays = RunArrays(images[train_idx], images[held], labels[held])
    return save_run(out, run, model, arrays, TrainingMetrics(classification=report))


def _flip_and_turn(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A surface defect is the same defect mirrored or turned by a right angle: eight views of each image."""
    turns = int(torch.randint(0, 4, (1,), generator=generator))
    flipped = batch.flip(3) if bool(torch.randint(0, 2, (1,), generator=generator)) else batch
    return torch.rot90(flipped, turns, dims=(2, 3))


def _checked(data: ImageDataset) -> ImageDataset:
    if len(data.images) == 0:
        raise InputError(f"{data.source} holds no images", hint="add images, one folder per class")
    if len(np.unique(data.labels)) < 2:
        raise InputError(
            f"{data.source} holds one class only ({data.label_names[int(data.labels[0])]!r})",
            hint="a classifier needs images of at least two classes",
        )
    return data


def _fit_normalisation(train_images: np.ndarray) -> ImagePreprocessing:
    scaled = train_images.astype(np.float64) / 255.0
    mean = scaled.mean(axis=(0, 1, 2))
    std = np.maximum(scaled.std(axis=(0, 1, 2)), 1e-3)
    return ImagePreprocessing(
        height=train_images.shape[1],
        width=train_images.shape[2],
        colour_order="RGB",
        mean=(float(mean[0]), float(mean[1]), float(mean[2])),
        std=(float(std[0]), float(std[1]), float(std[2])),
    )

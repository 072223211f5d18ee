"""Train the visual-inspection classifier on synthetic surfaces or a user's images, and write a run folder."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from edgefleet.errors import InputError
from edgefleet.manifest import ImagePreprocessing
from edgefleet.preprocess import prepare_images
from edgefleet.sketch import image_features
from train.datasets import ImageDataset
from train.datasets.surfaces import synthetic_images
from train.extra import FineTune, load_extra_data, load_fine_tune, with_extra, with_extra_groups, with_extra_labels
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
    *,
    extra: Path | None = None,
    init: Path | None = None,
) -> RunInfo:
    """Train the MobileNet-style CNN on ``dataset`` (default: synthetic surfaces); raises InputError for bad data.

    ``extra`` and ``init`` as in ``train_pdm``: the labelled images of a samples folder train too (a quarter held
    out: ``extra_accuracy``), and a run's weights and normalisation are the start, at a third of the learning rate.
    """
    torch.manual_seed(config.seed)
    data = _checked(dataset or synthetic_images(config.per_class, config.size, config.seed))
    images, labels, groups = data.images, data.labels, data.groups
    label_names = list(data.label_names)
    rest, held = split_by_recording(labels, groups, config.held_out_fraction, config.seed)
    fit_part, val_part = split_by_recording(labels[rest], groups[rest], config.validation_fraction, config.seed + 1)
    train_idx = rest[fit_part]
    val_idx = rest[val_part] if len(val_part) else train_idx
    tune = load_fine_tune(init, "vision", label_names) if init is not None else None
    extra_data = load_extra_data(extra, label_names, images.shape[1:], config.seed) if extra is not None else None
    preprocessing = _normalisation(tune, images[train_idx])
    if tune is not None:  # the same model, a new version of it: its name and width, a gentler learning rate
        config = replace(
            config, name=tune.run.name, width=float(tune.run.model_width), learning_rate=config.learning_rate / 3
        )

    def tensors(x: np.ndarray, y: np.ndarray) -> Split:
        return Split(torch.from_numpy(prepare_images(x, preprocessing)), torch.from_numpy(y))

    model = MobileNetLike(len(label_names), config.width)
    metrics: dict[str, float] = {}
    if tune is not None:
        tune.load_into(model)
        if extra_data is not None and len(extra_data.held_labels):
            metrics["extra_accuracy_before"] = _accuracy(model, tensors(extra_data.held_inputs, extra_data.held_labels))
    train_x: npt.NDArray[np.generic] = images[train_idx]
    train_y = labels[train_idx]
    if extra_data is not None:
        train_x, train_y = extra_data.mixed(train_x, train_y)
    weights = class_weights(train_y, len(label_names))
    validation = tensors(images[val_idx], labels[val_idx])
    fit(model, tensors(train_x, train_y), validation, weights, config, on_epoch, augment=_flip_and_turn)
    if extra_data is not None and len(extra_data.held_labels):
        metrics["extra_accuracy"] = _accuracy(model, tensors(extra_data.held_inputs, extra_data.held_labels))
    probs = predict(model, tensors(images[held], labels[held]).x).probs
    report = classification_report(labels[held], probs.argmax(1), label_names)
    reference_images = with_extra(images[train_idx], extra_data)
    reference_labels = with_extra_labels(labels[train_idx], extra_data)
    # the drift reference describes normal service (train/reference.py); 0 in the metrics: no nominal label
    source = reference_source(label_names, reference_labels, labels[held])

    run = RunInfo(
        kind="vision",
        name=config.name,
        labels=label_names,
        preprocessing=preprocessing,
        architecture="mobilenet",
        model_width=config.width,
        checkpoint=CHECKPOINT_FILE,
        calibration=DATA_FILE,
        metrics={"accuracy": report.accuracy, "macro_f1": report.macro_f1, "reference_nominal": float(source.nominal)}
        | metrics,
        reference_profile=build_reference_profile(
            image_features(reference_images[source.train_rows]),
            reference_labels,
            probs,
            source,
            with_extra_groups(groups[train_idx], extra_data)[source.train_rows],
        ),
    )
    arrays = RunArrays(reference_images, images[held], labels[held])
    return save_run(out, run, model, arrays, TrainingMetrics(classification=report))


def _accuracy(model: torch.nn.Module, data: Split) -> float:
    return float((predict(model, data.x).probs.argmax(1) == data.y.numpy()).mean())


def _normalisation(tune: FineTune | None, train_images: np.ndarray) -> ImagePreprocessing:
    """The fine-tuned run's normalisation (its weights expect it), or one fitted on the training images."""
    if tune is None:
        return _fit_normalisation(train_images)
    if not isinstance(tune.run.preprocessing, ImagePreprocessing):
        raise InputError("the run to fine-tune is not an image model", hint="pass a run of `edgefleet train vision`")
    return tune.run.preprocessing


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

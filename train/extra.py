"""Samples pulled from devices (``edgefleet samples pull``) as extra training data, and fine-tuning from a run.

Only labelled samples train: a sample was kept because the model was unsure of it or it lay outside the
reference data, which is exactly where the model's own answer is least trustworthy, so pseudo-labels would
teach the model its mistakes. Unlabelled ones are skipped and counted; people label them in ``labels.csv``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypeVar

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from edgefleet.errors import InputError
from edgefleet.samples import LABELS_FILE, NO_LABEL, read_folder
from train.run import RunInfo, load_run

__all__ = [
    "ExtraData",
    "FineTune",
    "load_extra_data",
    "load_fine_tune",
    "with_extra",
    "with_extra_groups",
    "with_extra_labels",
]

G = TypeVar("G", bound=np.generic)

# the extra samples' share of each training epoch: a few hundred drifted inputs beside thousands of reference
# ones would barely move the model, so they are repeated up to this share
_EXTRA_SHARE: Final = 0.3
_HELD_OUT_FRACTION: Final = 0.25


@dataclass(frozen=True, slots=True)
class ExtraData:
    """Labelled extra samples, split into a part to train on and a part to measure on."""

    train_inputs: npt.NDArray[np.generic]
    train_labels: npt.NDArray[np.int64]
    held_inputs: npt.NDArray[np.generic]
    held_labels: npt.NDArray[np.int64]
    skipped: int
    source: str

    def mixed(
        self, inputs: npt.NDArray[np.generic], labels: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.generic], npt.NDArray[np.int64]]:
        """``inputs`` and ``labels`` with the extra training samples added, repeated up to their share."""
        repeats = max(1, round(_EXTRA_SHARE * len(inputs) / ((1 - _EXTRA_SHARE) * max(len(self.train_labels), 1))))
        extra_x = np.concatenate([self.train_inputs] * repeats)
        extra_y = np.concatenate([self.train_labels] * repeats)
        return np.concatenate([inputs, extra_x.astype(inputs.dtype)]), np.concatenate([labels, extra_y])


def load_extra_data(folder: Path, label_names: list[str], input_shape: tuple[int, ...], seed: int) -> ExtraData:
    """The labelled samples in ``folder`` for a model of ``label_names`` taking inputs of ``input_shape``.

    Raises InputError when none is labelled, or when the inputs are not the model's shape.
    """
    sets = read_folder(folder, tuple(label_names))
    inputs = np.concatenate([s.inputs for s in sets])
    labels = np.concatenate([s.labels for s in sets])
    if inputs.shape[1:] != input_shape:
        raise InputError(
            f"the samples in {folder} are inputs of shape {inputs.shape[1:]}, the model takes {input_shape}",
            hint="pull samples from devices that run this model",
        )
    known = labels != NO_LABEL
    if not known.any():
        raise InputError(
            f"none of the {len(labels)} samples in {folder} has a label",
            hint=f"write each sample's class in the label column of {folder / LABELS_FILE}",
        )
    inputs, labels = inputs[known], labels[known]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    held_count = round(len(order) * _HELD_OUT_FRACTION) if len(order) >= 4 else 0
    held, kept = order[:held_count], order[held_count:]
    return ExtraData(
        inputs[kept], labels[kept], inputs[held], labels[held], skipped=int((~known).sum()), source=str(folder)
    )


def with_extra(inputs: npt.NDArray[G], extra: ExtraData | None) -> npt.NDArray[G]:
    """The training inputs and the extra ones trained on: the reference profile and calibration cover both."""
    if extra is None:
        return inputs
    return np.concatenate([inputs, extra.train_inputs.astype(inputs.dtype)])


def with_extra_labels(labels: npt.NDArray[np.int64], extra: ExtraData | None) -> npt.NDArray[np.int64]:
    """The labels of ``with_extra``'s inputs, in the same order."""
    if extra is None:
        return labels
    return np.concatenate([labels, extra.train_labels.astype(np.int64)])


def with_extra_groups(groups: npt.NDArray[np.int64], extra: ExtraData | None) -> npt.NDArray[np.int64]:
    """The recordings of ``with_extra``'s inputs, in the same order: each extra sample is its own."""
    if extra is None:
        return groups
    first = int(groups.max(initial=-1)) + 1
    return np.concatenate([groups, np.arange(first, first + len(extra.train_inputs), dtype=np.int64)])


@dataclass(frozen=True, slots=True)
class FineTune:
    """A trained run to start from: its description and its weights."""

    run: RunInfo
    state: dict[str, torch.Tensor]

    def load_into(self, model: nn.Module) -> None:
        """Give ``model`` the run's weights; raises InputError when the architectures differ."""
        try:
            model.load_state_dict(self.state)
        except RuntimeError as err:
            raise InputError(
                f"the run's checkpoint does not fit this model: {str(err).splitlines()[0]}",
                hint="fine-tune with the same kind of data and options the run was trained with",
            ) from err


def load_fine_tune(run_dir: Path, kind: str, label_names: list[str]) -> FineTune:
    """The run in ``run_dir`` to fine-tune; raises InputError when it is another kind or has other classes."""
    run = load_run(run_dir)
    if run.kind != kind:
        raise InputError(f"{run_dir} is a {run.kind} run, not {kind}", hint=f"pass a run of `edgefleet train {kind}`")
    if run.labels != label_names:
        raise InputError(
            f"{run_dir} classifies {', '.join(run.labels)}; the training data has {', '.join(label_names)}",
            hint="fine-tune on data of the run's classes",
        )
    state = torch.load(run_dir / run.checkpoint, map_location="cpu", weights_only=True)
    return FineTune(run, state)

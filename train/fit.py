"""The training loop every model shares: splits by recording, class weights, early stopping.

A model with an RUL head learns both tasks at once: weighted cross-entropy plus the squared error of
the RUL as a fraction of its cap, weighted so that both terms move the shared features.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from train.models import split_outputs

__all__ = [
    "EpochReport",
    "FitSettings",
    "Predictions",
    "Split",
    "class_weights",
    "fit",
    "predict",
    "split_by_recording",
]

_RUL_WEIGHT = 10.0


class FitSettings(Protocol):
    @property
    def epochs(self) -> int: ...
    @property
    def patience(self) -> int: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def learning_rate(self) -> float: ...
    @property
    def seed(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Split:
    """Model inputs with their class labels and, for an RUL head, the RUL as a fraction of its cap."""

    x: torch.Tensor
    y: torch.Tensor
    rul: torch.Tensor | None = None

    def take(self, index: torch.Tensor) -> Split:
        return Split(self.x[index], self.y[index], None if self.rul is None else self.rul[index])


@dataclass(frozen=True, slots=True)
class EpochReport:
    epoch: int
    epochs: int
    loss: float
    validation_loss: float
    validation_accuracy: float
    validation_rul_error: float | None = None  # RMSE as a fraction of the cap


@dataclass(frozen=True, slots=True)
class Predictions:
    probs: npt.NDArray[np.float32]
    rul_fraction: npt.NDArray[np.float32] | None


def fit(
    model: nn.Module,
    train: Split,
    validation: Split,
    class_weights: torch.Tensor,
    config: FitSettings,
    on_epoch: Callable[[EpochReport], None] | None,
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
) -> None:
    """Train with weighted cross-entropy; stop when validation loss has not improved for ``patience`` epochs
    and keep the best weights."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.learning_rate, total_steps=config.epochs * -(-len(train.x) // config.batch_size)
    )
    cross_entropy = nn.CrossEntropyLoss(weight=class_weights)
    generator = torch.Generator().manual_seed(config.seed)
    best_loss, best_state, stale = float("inf"), copy.deepcopy(model.state_dict()), 0
    for epoch in range(config.epochs):
        model.train()
        order = torch.randperm(len(train.x), generator=generator)
        total = 0.0
        for start in range(0, len(order), config.batch_size):
            batch = train.take(order[start : start + config.batch_size])
            optimizer.zero_grad()
            inputs = batch.x if augment is None else augment(batch.x, generator)
            loss = _loss(model(inputs), batch, cross_entropy)
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            scheduler.step()
            total += loss.item() * len(batch.x)
        report = _evaluate(model, validation, cross_entropy)
        if on_epoch is not None:
            on_epoch(EpochReport(epoch + 1, config.epochs, total / len(order), report[0], report[1], report[2]))
        if report[0] < best_loss:
            best_loss, best_state, stale = report[0], copy.deepcopy(model.state_dict()), 0
        else:
            stale += 1
            if stale >= config.patience:
                break
    model.load_state_dict(best_state)


def _loss(
    outputs: torch.Tensor | tuple[torch.Tensor, torch.Tensor], data: Split, cross_entropy: nn.Module
) -> torch.Tensor:
    logits, rul = split_outputs(outputs)
    loss: torch.Tensor = cross_entropy(logits, data.y)
    if rul is not None and data.rul is not None:
        loss = loss + _RUL_WEIGHT * nn.functional.mse_loss(rul.squeeze(1), data.rul)
    return loss


def _evaluate(model: nn.Module, data: Split, cross_entropy: nn.Module) -> tuple[float, float, float | None]:
    model.eval()
    with torch.no_grad():
        outputs = model(data.x)
        logits, rul = split_outputs(outputs)
        accuracy = float((logits.argmax(1) == data.y).float().mean())
        rul_error = None
        if rul is not None and data.rul is not None:
            rul_error = float(torch.sqrt(nn.functional.mse_loss(rul.squeeze(1), data.rul)))
        return float(_loss(outputs, data, cross_entropy)), accuracy, rul_error


def class_weights(labels: npt.NDArray[np.int64], classes: int) -> torch.Tensor:
    """Inverse class frequency, mean 1, so a rare fault counts as much as a common one."""
    counts = np.bincount(labels, minlength=classes).astype(np.float64)
    weights = np.divide(1.0, counts, out=np.zeros(classes), where=counts > 0)
    return torch.tensor(weights / weights[counts > 0].mean(), dtype=torch.float32)


def predict(model: nn.Module, x: torch.Tensor) -> Predictions:
    model.eval()
    with torch.no_grad():
        logits, rul = split_outputs(model(x))
        return Predictions(torch.softmax(logits, dim=1).numpy(), None if rul is None else rul.squeeze(1).numpy())


def split_by_recording(
    labels: npt.NDArray[np.int64], groups: npt.NDArray[np.int64], fraction: float, seed: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Kept and split-off indices, with every recording wholly on one side, stratified by class.

    A recording that changes class, such as a run to failure, counts as the class of its last window.
    A class with a single recording stays on the kept side, so training sees every class.
    """
    rng = np.random.default_rng(seed + 1)
    group_ids, last = np.unique(groups[::-1], return_index=True)
    final_label = labels[::-1][last]
    held_groups: list[int] = []
    for label in np.unique(final_label):
        class_groups = group_ids[final_label == label]
        count = min(max(1, round(len(class_groups) * fraction)), len(class_groups) - 1)
        held_groups.extend(rng.choice(class_groups, size=count, replace=False).tolist())
    held = np.isin(groups, held_groups)
    return np.flatnonzero(~held), np.flatnonzero(held)

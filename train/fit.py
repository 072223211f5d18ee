"""The training loop every model shares: splits by recording, class weights, early stopping."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

__all__ = ["EpochReport", "FitSettings", "class_weights", "fit", "predict", "split_by_recording"]


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
class EpochReport:
    epoch: int
    epochs: int
    loss: float
    validation_loss: float
    validation_accuracy: float


def fit(
    model: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    validation: tuple[torch.Tensor, torch.Tensor],
    class_weights: torch.Tensor,
    config: FitSettings,
    on_epoch: Callable[[EpochReport], None] | None,
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
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
            inputs = x_train[batch] if augment is None else augment(x_train[batch], generator)
            loss = loss_fn(model(inputs), y_train[batch])
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


def predict(model: nn.Module, x: torch.Tensor) -> npt.NDArray[np.float32]:
    model.eval()
    with torch.no_grad():
        return torch.softmax(model(x), dim=1).numpy()


def split_by_recording(
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

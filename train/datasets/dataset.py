"""The one shape every sensor dataset takes: windows with labels and the recording each came from."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edgefleet.errors import InputError

__all__ = ["ImageDataset", "RulTargets", "SensorDataset", "check_dataset", "window_recording"]


@dataclass(frozen=True, slots=True)
class RulTargets:
    """Remaining useful life at each window's end, already capped at ``cap`` (the piecewise-linear target)."""

    values: npt.NDArray[np.float32]
    cap: float
    unit: str


@dataclass(frozen=True, slots=True)
class SensorDataset:
    """``windows`` (N, C, L) float32, ``labels`` (N,) indices into ``label_names``, ``groups`` (N,) recording ids;
    ``rul`` for recordings that run to failure."""

    windows: npt.NDArray[np.float32]
    labels: npt.NDArray[np.int64]
    groups: npt.NDArray[np.int64]
    label_names: tuple[str, ...]
    channels: tuple[tuple[str, str], ...]
    sample_rate_hz: float
    source: str
    rul: RulTargets | None = None


@dataclass(frozen=True, slots=True)
class ImageDataset:
    """``images`` (N, H, W, 3) uint8 RGB, ``labels`` (N,) indices into ``label_names``, ``groups`` (N,) sources."""

    images: npt.NDArray[np.uint8]
    labels: npt.NDArray[np.int64]
    groups: npt.NDArray[np.int64]
    label_names: tuple[str, ...]
    source: str


def window_recording(samples: npt.NDArray[np.floating], window_length: int, hop: int) -> npt.NDArray[np.float32]:
    """Cut a recording (C, T) into windows (N, C, window_length) that start every ``hop`` samples."""
    if samples.shape[1] < window_length:
        return np.empty((0, samples.shape[0], window_length), dtype=np.float32)
    starts = range(0, samples.shape[1] - window_length + 1, hop)
    return np.stack([samples[:, s : s + window_length] for s in starts]).astype(np.float32)


def check_dataset(dataset: SensorDataset) -> SensorDataset:
    """The dataset as given, or InputError naming what makes it unusable for training."""
    where = dataset.source
    if dataset.windows.ndim != 3 or dataset.windows.shape[1] != len(dataset.channels):
        raise InputError(
            f"{where} gives windows of shape {dataset.windows.shape}, expected (windows, {len(dataset.channels)} "
            "channels, samples)",
            hint="each window must hold every channel over the same number of samples",
        )
    if not len(dataset.labels) == len(dataset.groups) == len(dataset.windows):
        raise InputError(
            f"{where} has {len(dataset.windows)} windows but {len(dataset.labels)} labels",
            hint="give one label and one recording id per window",
        )
    if len(dataset.windows) == 0:
        raise InputError(
            f"{where} gives no windows", hint="check the recordings are longer than one window, or lower --window"
        )
    bad = ~np.isfinite(dataset.windows).all(axis=(1, 2))
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"{where}: {int(bad.sum())} windows hold NaN or infinite values (the first is window {first}, "
            f"recording {int(dataset.groups[first])})",
            hint="fill or drop the gaps in the recording before training",
        )
    present = np.unique(dataset.labels)
    if len(present) < 2:
        only = dataset.label_names[int(present[0])]
        raise InputError(
            f"{where} holds one class only ({only!r})", hint="a classifier needs windows of at least two classes"
        )
    if len(np.unique(dataset.groups)) < 2:
        raise InputError(
            f"{where} is one recording", hint="held-out data must come from other recordings: give several"
        )
    return dataset

"""Load NASA C-MAPSS turbofan data (``train_FD00x.txt``, ``test_FD00x.txt``, ``RUL_FD00x.txt``).

Each row is one engine cycle: unit, cycle, three operating settings and 21 sensors, space-separated.
Training units run to failure, so the remaining useful life (RUL) of a cycle is the unit's last cycle
minus it; test units stop early and ``RUL_FD00x.txt`` gives the RUL after their last cycle. Targets
use the usual piecewise-linear cap: an engine far from failure counts as ``rul_cap`` cycles from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from edgefleet.errors import InputError
from train.datasets.dataset import window_recording

__all__ = ["CMAPSS_CHANNELS", "RulDataset", "load_cmapss"]

CMAPSS_CHANNELS = tuple(f"setting_{i}" for i in range(1, 4)) + tuple(f"sensor_{i}" for i in range(1, 22))
_COLUMNS = 2 + len(CMAPSS_CHANNELS)


@dataclass(frozen=True, slots=True)
class RulDataset:
    """``windows`` (N, C, L) of cycles, ``rul`` (N,) at each window's last cycle, ``groups`` (N,) unit ids."""

    windows: npt.NDArray[np.float32]
    rul: npt.NDArray[np.float32]
    groups: npt.NDArray[np.int64]
    channels: tuple[str, ...]
    source: str


def load_cmapss(
    folder: Path, subset: str = "FD001", *, split: str = "train", window_length: int = 30, rul_cap: int = 125
) -> RulDataset:
    """Windows of ``window_length`` cycles with their capped RUL; raises InputError for missing or malformed files."""
    if split not in ("train", "test"):
        raise InputError(f"unknown C-MAPSS split {split!r}", hint="choose train or test")
    rows = _read(folder / f"{split}_{subset}.txt")
    true_rul_at_end = _read_rul(folder / f"RUL_{subset}.txt") if split == "test" else None
    windows, targets, groups = [], [], []
    for position, unit in enumerate(dict.fromkeys(rows[:, 0].astype(int).tolist())):
        unit_rows = rows[rows[:, 0] == unit]
        unit_rows = unit_rows[np.argsort(unit_rows[:, 1])]
        cycles = unit_rows[:, 1]
        end_rul = 0.0 if true_rul_at_end is None else _at(true_rul_at_end, position, folder, subset)
        rul = np.minimum(end_rul + cycles[-1] - cycles, rul_cap)
        segment = window_recording(unit_rows[:, 2:].T, window_length, 1)
        windows.append(segment)
        targets.extend(rul[window_length - 1 :].tolist())
        groups.extend([unit] * len(segment))
    return RulDataset(
        np.concatenate(windows),
        np.asarray(targets, dtype=np.float32),
        np.asarray(groups, dtype=np.int64),
        CMAPSS_CHANNELS,
        source=str(folder / f"{split}_{subset}.txt"),
    )


def _read(path: Path) -> npt.NDArray[np.float64]:
    try:
        rows = np.loadtxt(path, ndmin=2)
    except FileNotFoundError as err:
        raise InputError(f"{path} does not exist", hint="pass the folder that holds the C-MAPSS text files") from err
    except ValueError as err:
        raise InputError(f"{path} is not C-MAPSS data: {err}", hint="the files are space-separated numbers") from err
    if rows.shape[1] != _COLUMNS:
        raise InputError(
            f"{path} has {rows.shape[1]} columns, C-MAPSS has {_COLUMNS} (unit, cycle, 3 settings, 21 sensors)",
            hint="pass the original train_/test_FD00x.txt files",
        )
    return rows


def _read_rul(path: Path) -> npt.NDArray[np.float64]:
    try:
        return np.loadtxt(path, ndmin=1)
    except FileNotFoundError as err:
        raise InputError(f"{path} does not exist", hint="the test split needs its RUL_FD00x.txt") from err


def _at(values: npt.NDArray[np.float64], position: int, folder: Path, subset: str) -> float:
    if position >= len(values):
        raise InputError(
            f"RUL_{subset}.txt in {folder} has {len(values)} lines, fewer than the test units",
            hint="use the RUL file that belongs to this test file",
        )
    return float(values[position])

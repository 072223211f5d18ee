"""Load NASA C-MAPSS turbofan data (``train_FD00x.txt``, ``test_FD00x.txt``, ``RUL_FD00x.txt``).

Each row is one engine cycle: unit, cycle, three operating settings and 21 sensors, space-separated.
Training units run to failure, so the remaining useful life (RUL) of a cycle is the unit's last cycle
minus it; test units stop early and ``RUL_FD00x.txt`` gives the RUL after their last cycle. Targets
use the usual piecewise-linear cap: an engine far from failure counts as ``rul_cap`` cycles from it.

C-MAPSS names no fault classes, so each window is also labelled with a health stage from its RUL
(healthy at the cap, failing within a quarter of it, degrading between) for the model's class head.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from edgefleet.errors import InputError
from train.datasets.dataset import RulTargets, SensorDataset, window_recording

__all__ = ["CMAPSS_CHANNELS", "HEALTH_STAGES", "health_stages", "load_cmapss"]

CMAPSS_CHANNELS: Final = tuple(f"setting_{i}" for i in range(1, 4)) + tuple(f"sensor_{i}" for i in range(1, 22))
HEALTH_STAGES: Final = ("healthy", "degrading", "failing")
_COLUMNS: Final = 2 + len(CMAPSS_CHANNELS)


def health_stages(rul: npt.NDArray[np.floating], cap: float) -> npt.NDArray[np.int64]:
    """Indices into HEALTH_STAGES for capped RUL values."""
    return np.where(rul >= cap, 0, np.where(rul > cap / 4, 1, 2)).astype(np.int64)


def load_cmapss(
    folder: Path, subset: str = "FD001", *, split: str = "train", window_length: int = 30, rul_cap: int = 125
) -> SensorDataset:
    """Windows of ``window_length`` cycles (one sample per cycle) with their capped RUL in cycles and health stage.

    Raises InputError for missing or malformed files.
    """
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
    rul_values = np.asarray(targets, dtype=np.float32)
    return SensorDataset(
        np.concatenate(windows),
        health_stages(rul_values, rul_cap),
        np.asarray(groups, dtype=np.int64),
        HEALTH_STAGES,
        tuple((name, "") for name in CMAPSS_CHANNELS),
        sample_rate_hz=1.0,
        source=str(folder / f"{split}_{subset}.txt"),
        rul=RulTargets(rul_values, float(rul_cap), "cycles"),
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

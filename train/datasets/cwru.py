"""Load the Case Western Reserve University bearing data (``.mat`` files with DE/FE time channels)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from scipy.io import loadmat

from edgefleet.errors import InputError
from train.datasets.dataset import SensorDataset, window_recording

__all__ = ["load_cwru"]

# CWRU names each signal X<record>_<DE|FE|BA>_time; the fan-end channel is missing from some records
_SIGNAL = re.compile(r"^X\d+_(DE|FE)_time$")


def load_cwru(
    root: Path, *, window_length: int = 1024, hop: int = 512, sample_rate_hz: float = 12_000.0
) -> SensorDataset:
    """One class per sub-folder of ``root`` (e.g. ``normal/``, ``inner_race/``), one recording per ``.mat``.

    Uses the drive-end and fan-end accelerometers when every file has both, else the drive end only.
    Raises InputError for a missing folder, no ``.mat`` files, or a file without a DE signal.
    """
    if not root.is_dir():
        raise InputError(f"{root} is not a folder", hint="pass the folder holding one sub-folder per class")
    files = sorted(root.glob("*/*.mat"))
    if not files:
        raise InputError(f"{root} holds no <class>/<record>.mat files", hint="lay the CWRU files out by class")
    signals = [_signals(path) for path in files]
    names = ["DE", "FE"] if all("FE" in s for s in signals) else ["DE"]
    label_names = tuple(sorted({p.parent.name for p in files}))
    windows, labels, groups = [], [], []
    for group, (path, found) in enumerate(zip(files, signals, strict=True)):
        length = min(len(found[n]) for n in names)
        recording = np.stack([found[n][:length] for n in names])
        segment = window_recording(recording, window_length, hop)
        windows.append(segment)
        labels.extend([label_names.index(path.parent.name)] * len(segment))
        groups.extend([group] * len(segment))
    return SensorDataset(
        np.concatenate(windows),
        np.asarray(labels, dtype=np.int64),
        np.asarray(groups, dtype=np.int64),
        label_names,
        tuple((f"accel_{n.lower()}", "g") for n in names),
        sample_rate_hz,
        source=str(root),
    )


def _signals(path: Path) -> dict[str, np.ndarray]:
    try:
        content = loadmat(path)
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read {path}: {err}", hint="check it is a MATLAB .mat file from the CWRU set") from err
    found = {}
    for key, value in content.items():
        match = _SIGNAL.match(key)
        if match:
            signal = np.asarray(value, dtype=np.float64)
            if signal.ndim > 2 or (signal.ndim == 2 and min(signal.shape) > 1):
                raise InputError(
                    f"{path}: {key} has shape {signal.shape}, but a CWRU signal is one column of samples",
                    hint="store each accelerometer as an N x 1 array",
                )
            found[match.group(1)] = signal.ravel()
    if "DE" not in found:
        raise InputError(f"{path} has no X..._DE_time signal", hint="only CWRU drive-end recordings are supported")
    return found

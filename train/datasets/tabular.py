"""Load a CSV or Parquet file of timestamped channels with a label column into windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pv
import pyarrow.parquet as pq

from edgefleet.errors import InputError
from train.datasets.dataset import SensorDataset, window_recording

__all__ = ["load_table"]

_READERS = {".csv": lambda p: pv.read_csv(p), ".parquet": lambda p: pq.read_table(p)}


def load_table(
    path: Path,
    *,
    label_column: str = "label",
    time_column: str = "timestamp",
    recording_column: str = "recording",
    window_length: int = 512,
    hop: int = 256,
    sample_rate_hz: float | None = None,
) -> SensorDataset:
    """Windows of every numeric column but the label, time and recording columns.

    Rows are taken in file order; a recording is the rows sharing ``recording_column`` when the file has
    it, else each unbroken run of one label. The sample rate comes from the time column (seconds) unless
    given. Raises InputError for a missing file, an unknown format or a missing label column.
    """
    table = _read(path)
    names = table.column_names
    if label_column not in names:
        raise InputError(
            f"{path} has no label column {label_column!r} (its columns: {', '.join(names)})",
            hint="name the label column with --label-column",
        )
    reserved = {label_column, time_column, recording_column}
    channels = [
        n
        for n in names
        if n not in reserved and (pa.types.is_floating(table[n].type) or pa.types.is_integer(table[n].type))
    ]
    if not channels:
        raise InputError(f"{path} has no numeric channel columns", hint="add columns of sensor readings")
    values = np.stack([table[n].to_numpy(zero_copy_only=False).astype(np.float64) for n in channels])
    label_text = pc.cast(table[label_column], pa.string()).to_numpy(zero_copy_only=False)
    label_names = tuple(sorted(set(label_text.tolist())))
    label_index = np.asarray([label_names.index(v) for v in label_text], dtype=np.int64)
    recording_ids = _recordings(table, recording_column, label_index)
    rate = sample_rate_hz or _sample_rate(table, time_column, path)
    windows, labels, groups = [], [], []
    for group, rows in enumerate(_runs(recording_ids)):
        segment = window_recording(values[:, rows], window_length, hop)
        windows.append(segment)
        labels.extend([int(label_index[rows[0]])] * len(segment))
        groups.extend([group] * len(segment))
    return SensorDataset(
        np.concatenate(windows) if windows else np.empty((0, len(channels), window_length), np.float32),
        np.asarray(labels, dtype=np.int64),
        np.asarray(groups, dtype=np.int64),
        label_names,
        tuple((n, "") for n in channels),
        rate,
        source=str(path),
    )


def _read(path: Path) -> pa.Table:
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise InputError(f"{path} is neither .csv nor .parquet", hint="convert the recording to CSV or Parquet")
    try:
        return reader(path)
    except FileNotFoundError as err:
        raise InputError(f"{path} does not exist", hint="check the path given with --data") from err
    except (pa.ArrowException, OSError) as err:
        raise InputError(f"cannot read {path}: {err}", hint="check the file is a valid CSV or Parquet file") from err


def _recordings(table: pa.Table, column: str, labels: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    if column in table.column_names:
        text = pc.cast(table[column], pa.string()).to_numpy(zero_copy_only=False)
        return np.unique(text, return_inverse=True)[1].astype(np.int64)
    # no recording column: a new recording starts wherever the label changes
    return np.concatenate([[0], np.cumsum(labels[1:] != labels[:-1])]).astype(np.int64)


def _runs(recording_ids: npt.NDArray[np.int64]) -> list[npt.NDArray[np.int64]]:
    """Row indices of each recording, in order of first appearance."""
    order = dict.fromkeys(recording_ids.tolist())
    return [np.flatnonzero(recording_ids == r) for r in order]


def _sample_rate(table: pa.Table, column: str, path: Path) -> float:
    if column not in table.column_names:
        raise InputError(
            f"{path} has no time column {column!r} to derive the sample rate from",
            hint="pass --sample-rate (Hz), or add a timestamp column in seconds",
        )
    column_data = table[column]
    if pa.types.is_timestamp(column_data.type):
        times = pc.cast(column_data, pa.timestamp("ns")).cast(pa.int64()).to_numpy(zero_copy_only=False) / 1e9
    else:
        times = column_data.to_numpy(zero_copy_only=False).astype(np.float64)
    steps = np.diff(times)
    steps = steps[steps > 0]
    if steps.size == 0:
        raise InputError(f"{path}: the time column never increases", hint="pass --sample-rate (Hz)")
    return float(1.0 / np.median(steps))

"""Replay of a recorded CSV or Parquet file as the model's windows, paced like the live sensor or as fast as it runs."""

from __future__ import annotations

import csv
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from edge_agent.sources._pacing import Pacer
from edge_agent.sources._windows import Windower
from edge_agent.sources.settings import ReplaySourceSettings
from edgefleet.errors import ConfigError, InputError
from edgefleet.manifest import SensorPreprocessing

__all__ = ["ReplaySource"]

# rows parsed at a time: a few tens of kB, whatever the size of the recording
_BLOCK_ROWS: Final = 1024
_CSV_SUFFIXES: Final = frozenset({".csv"})
_PARQUET_SUFFIXES: Final = frozenset({".parquet", ".pq"})


class ReplaySource:
    """Windows (channels, length) cut from the recording's columns named after the model's channels.

    The file is read block by block, so memory does not grow with its length. Paced at ``speed`` times the
    sample rate, windows whose time passed while the agent was busy are skipped and counted in ``dropped``.
    Raises ConfigError or InputError up front for a missing file, unknown format, missing column or pyarrow.
    """

    def __init__(
        self,
        settings: ReplaySourceSettings,
        spec: SensorPreprocessing,
        stop: threading.Event,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._path = settings.path
        self._channels = [c.name for c in spec.channels]
        self._length = spec.window_length
        self._hop = settings.hop or spec.window_length
        self._loop = settings.loop
        self._stop = stop
        period_s = self._hop / spec.sample_rate_hz / settings.speed if settings.speed else 0.0
        self._pacer = Pacer(period_s, stop, clock)
        self._dropped = 0
        self._blocks = _block_reader(self._path, self._channels)

    @property
    def dropped(self) -> int:
        return self._dropped

    def __iter__(self) -> Iterator[npt.NDArray[np.float32]]:
        while not self._stop.is_set():
            made = 0
            # each pass starts a fresh window: the end and the start of a recording are not one signal
            windower = Windower(len(self._channels), self._length, self._hop)
            for block in self._blocks():
                for window in windower.extend(block):
                    made += 1
                    if self._stop.is_set():
                        return
                    if self._pacer.is_on_time():
                        yield window
                    else:
                        self._dropped += 1
            if not made:
                raise InputError(
                    f"{self._path} holds fewer samples than one window of {self._length}",
                    hint="record a longer stretch, or run a model with shorter windows",
                )
            if not self._loop:
                return


def _block_reader(path: Path, channels: list[str]) -> Callable[[], Iterator[npt.NDArray[np.float32]]]:
    """A function that reads ``path`` afresh in blocks (rows, channels); checks the file and its columns now."""
    if not path.is_file():
        raise InputError(f"the recording {path} does not exist", hint="set [source] path to a .csv or .parquet file")
    suffix = path.suffix.lower()
    if suffix in _CSV_SUFFIXES:
        _csv_columns(path, channels)
        return lambda: _csv_blocks(path, channels)
    if suffix in _PARQUET_SUFFIXES:
        parquet = _import_parquet()
        _parquet_columns(parquet, path, channels)
        return lambda: _parquet_blocks(parquet, path, channels)
    raise ConfigError(
        f"the recording {path} is neither .csv nor .parquet", hint="convert it to CSV with a header row of channels"
    )


def _csv_columns(path: Path, channels: list[str]) -> None:
    with path.open(newline="", encoding="utf-8-sig") as file:  # -sig: spreadsheets start with a byte-order mark
        _column_indexes(path, next(csv.reader(file), []), channels)


def _column_indexes(path: Path, header: list[str], channels: list[str]) -> list[int]:
    names = [name.strip() for name in header]
    missing = [c for c in channels if c not in names]
    if missing:
        raise InputError(
            f"{path}, line 1: no column {missing[0]!r} (the header has {', '.join(names) or 'nothing'})",
            hint=f"the model needs the columns {', '.join(channels)}: rename the header to match",
        )
    return [names.index(c) for c in channels]


def _csv_blocks(path: Path, channels: list[str]) -> Iterator[npt.NDArray[np.float32]]:
    with path.open(newline="", encoding="utf-8-sig") as file:
        reader = csv.reader(file)
        columns = _column_indexes(path, next(reader, []), channels)
        block = np.empty((_BLOCK_ROWS, len(channels)), dtype=np.float32)
        filled = 0
        for row in reader:
            if not row:
                continue  # a blank line, often the last one
            for j, column in enumerate(columns):
                text = row[column] if column < len(row) else ""
                try:
                    block[filled, j] = float(text)
                except ValueError as err:
                    raise InputError(
                        f"{path}, line {reader.line_num}, column {channels[j]!r}: {text!r} is not a number",
                        hint="repair or remove that row of the recording",
                    ) from err
            filled += 1
            if filled == _BLOCK_ROWS:
                yield block
                block, filled = np.empty_like(block), 0
        if filled:
            yield block[:filled]


def _import_parquet() -> Any:
    try:
        import pyarrow.parquet
    except ImportError as err:
        raise ConfigError(
            "reading a Parquet recording needs pyarrow, which is not installed",
            hint="pip install pyarrow, or convert the recording to CSV",
        ) from err
    return pyarrow.parquet


def _parquet_columns(parquet: Any, path: Path, channels: list[str]) -> None:
    try:
        schema = parquet.ParquetFile(path).schema_arrow
    except (OSError, ValueError) as err:  # pyarrow's ArrowInvalid is a ValueError
        raise InputError(f"{path} is not a readable Parquet file: {err}", hint="check the file") from err
    missing = [c for c in channels if c not in schema.names]
    if missing:
        raise InputError(
            f"{path}: no column {missing[0]!r} (the file has {', '.join(schema.names) or 'nothing'})",
            hint=f"the model needs the columns {', '.join(channels)}: rename the columns to match",
        )
    import pyarrow.types

    for name in channels:
        kind = schema.field(name).type
        if not (pyarrow.types.is_integer(kind) or pyarrow.types.is_floating(kind)):
            raise InputError(f"{path}, column {name!r}: holds {kind}, not numbers", hint="store the channel as numbers")


def _parquet_blocks(parquet: Any, path: Path, channels: list[str]) -> Iterator[npt.NDArray[np.float32]]:
    first_row = 0
    for batch in parquet.ParquetFile(path).iter_batches(batch_size=_BLOCK_ROWS, columns=channels):
        for name in channels:
            nulls = batch.column(name).is_null().to_numpy(zero_copy_only=False)
            if nulls.any():
                raise InputError(
                    f"{path}, row {first_row + int(nulls.argmax()) + 1}, column {name!r}: the value is missing",
                    hint="repair or remove that row of the recording",
                )
        yield np.column_stack([batch.column(name).to_numpy(zero_copy_only=False) for name in channels]).astype(
            np.float32
        )
        first_row += batch.num_rows

"""Cutting a stream of samples into the model's windows, every ``hop`` samples, with bounded memory."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt

__all__ = ["Windower"]


class Windower:
    """Takes samples (rows of one value per channel) in blocks of any size, gives windows (channels, length).

    It keeps fewer than ``length`` samples between calls; with ``hop > length`` the samples between two
    windows are skipped as they arrive.
    """

    def __init__(self, channels: int, length: int, hop: int) -> None:
        self._channels, self._length, self._hop = channels, length, hop
        self._pending = np.empty((0, channels), dtype=np.float32)
        self._skip = 0

    def extend(self, samples: npt.ArrayLike) -> Iterator[npt.NDArray[np.float32]]:
        """The windows that the new samples complete, oldest first."""
        rows = np.asarray(samples, dtype=np.float32).reshape(-1, self._channels)
        skipped = min(self._skip, len(rows))
        rows, self._skip = rows[skipped:], self._skip - skipped
        data = np.concatenate([self._pending, rows]) if len(self._pending) else rows
        starts = range(0, max(len(data) - self._length + 1, 0), self._hop)
        next_start = starts[-1] + self._hop if starts else 0
        # a copy, so that the caller's block and the windows already given are not kept alive
        self._pending = data[next_start:].copy()
        self._skip += max(next_start - len(data), 0)
        # copies: a window must not change when the caller reuses its buffer
        return (data[s : s + self._length].T.copy() for s in starts)

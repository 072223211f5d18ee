"""Between the input source and the model: a bounded queue filled on its own thread.

The source never waits for the model: when the queue is full the newest input is dropped and counted,
so memory stays bounded however slow inference gets, and the telemetry shows the loss.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

from edge_agent.sources import Source

__all__ = ["Feeder"]


class Feeder:
    """Reads ``source`` into a queue of at most ``capacity`` inputs until the source ends or ``stop`` is set."""

    def __init__(self, source: Source[Any], capacity: int, stop: threading.Event) -> None:
        self._source = source
        self._stop = stop
        self._queue: queue.Queue[npt.NDArray[np.generic]] = queue.Queue(maxsize=capacity)
        self._finished = threading.Event()
        self._error: BaseException | None = None
        self._overflow = 0
        self._thread = threading.Thread(target=self._fill, name="edgefleet-feeder", daemon=True)

    @property
    def dropped(self) -> int:
        """Inputs lost so far: those the source discarded, and those the full queue refused."""
        return self._source.dropped + self._overflow

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout_s: float) -> None:
        """Wait for the reading thread after ``stop`` (a source blocked on a device may not answer at once)."""
        self._thread.join(timeout_s)

    def batches(self, size: int, wait_s: float) -> Iterator[list[npt.NDArray[np.generic]]]:
        """Batches of up to ``size`` queued inputs; an empty list after ``wait_s`` with none, so the caller can
        report an idle interval. Ends when the source has ended and the queue is drained, or on stop."""
        while not self._stop.is_set():
            try:
                first = self._queue.get(timeout=wait_s)
            except queue.Empty:
                if self._finished.is_set():
                    if self._error is not None:
                        raise self._error from None
                    return
                yield []
                continue
            batch = [first]
            while len(batch) < size:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            yield batch

    def _fill(self) -> None:
        try:
            for item in self._source:
                if self._stop.is_set():
                    return
                try:
                    self._queue.put_nowait(item)
                except queue.Full:
                    self._overflow += 1
        except Exception as err:  # handed to the agent's thread, which reports it; a thread would only print it
            self._error = err
        finally:
            self._finished.set()

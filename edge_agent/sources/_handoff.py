"""A bounded hand-off from a device thread to the agent that keeps the newest inputs and counts the rest."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Final, Generic, TypeVar

__all__ = ["Handoff", "serve"]

T = TypeVar("T")

# how often the agent's side looks at the stop event while nothing arrives
_POLL_S: Final = 0.1
# a device thread that does not finish in this time is left behind (it is a daemon) rather than hang shutdown
_JOIN_S: Final = 5.0


class Handoff(Generic[T]):
    """At most ``capacity`` inputs wait; when full, the oldest is discarded and counted in ``dropped``.

    One producer thread and one consumer: the newest data is what a live sensor or camera should show.
    """

    def __init__(self, capacity: int) -> None:
        self._queue: queue.Queue[T] = queue.Queue(maxsize=capacity)
        self.dropped = 0

    def put(self, item: T) -> None:
        while True:
            try:
                self._queue.put_nowait(item)
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()
                    self.dropped += 1
                except queue.Empty:  # the consumer took one in between: there is room now
                    pass

    def get(self, timeout_s: float) -> T | None:
        try:
            return self._queue.get(timeout=timeout_s)
        except queue.Empty:
            return None


def serve(
    name: str, produce: Callable[[threading.Event], None], handoff: Handoff[T], stop: threading.Event
) -> Iterator[T]:
    """Run ``produce(halt)`` on a thread named ``name`` and yield what it puts into ``handoff`` until ``stop``.

    ``halt`` is set when the agent stops or stops iterating; an exception in ``produce`` is raised here.
    """
    halt = threading.Event()
    failures: list[Exception] = []

    def _run() -> None:
        try:
            produce(halt)
        except Exception as err:  # handed to the agent's thread, which can act on it
            failures.append(err)

    thread = threading.Thread(target=_run, name=name, daemon=True)
    thread.start()
    try:
        while not stop.is_set():
            item = handoff.get(_POLL_S)
            if item is not None:
                yield item
            elif not thread.is_alive():
                item = handoff.get(0)  # the last items put just before the thread ended
                if item is not None:
                    yield item
                    continue
                if failures:
                    raise failures[0]
                return
    finally:
        halt.set()
        thread.join(_JOIN_S)

"""Helpers every test may use: wait on a condition instead of sleeping, and pick free ports."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(condition: Callable[[], T], *, timeout_s: float = 10.0, interval_s: float = 0.05) -> T:
    """Poll ``condition`` until it returns something truthy and return that; on timeout fail with its last value."""
    deadline = time.monotonic() + timeout_s
    last: T = condition()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(f"condition still false after {timeout_s} s; last value: {last!r}")
        time.sleep(interval_s)
        last = condition()
    return last


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])

"""Real services for the benchmarks: a Mosquitto broker on a free loopback port, and polling for a condition."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from edgefleet.ports import free_port

__all__ = ["free_port", "mosquitto", "wait_for"]

T = TypeVar("T")


def wait_for(condition: Callable[[], T], *, timeout_s: float = 10.0, interval_s: float = 0.01) -> T:
    """Poll ``condition`` until it returns something truthy and return that; raises TimeoutError with its last value."""
    deadline = time.monotonic() + timeout_s
    last = condition()
    while not last:
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition still false after {timeout_s} s; last value: {last!r}")
        time.sleep(interval_s)
        last = condition()
    return last


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def mosquitto(folder: Path, *extra_config: str) -> Iterator[int]:
    """Mosquitto listening on a free loopback port, anonymous, without persistence; yields the port."""
    port = free_port()
    config = folder / "mosquitto.conf"
    config.write_text(
        "\n".join([f"listener {port} 127.0.0.1", "allow_anonymous true", "persistence false", *extra_config]) + "\n"
    )
    with (folder / "mosquitto.log").open("wb") as log:
        broker = subprocess.Popen(["/usr/sbin/mosquitto", "-c", str(config)], stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: broker.poll() is not None or _accepts(port))
            if broker.returncode is not None:
                raise RuntimeError(f"mosquitto exited with {broker.returncode}; see {folder / 'mosquitto.log'}")
            yield port
        finally:
            broker.terminate()
            broker.wait(10)

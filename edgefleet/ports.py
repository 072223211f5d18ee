"""Pick a free TCP port for a server this process is about to start.

Binding port 0 hands out a port from the kernel's ephemeral range, the same range outgoing connections
draw from, so between choosing such a port and the server binding it a client socket can take it
("address already in use"). Ports are chosen below that range instead, where only listeners live.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

__all__ = ["free_port"]

_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST = 10_000
_TRIES = 200


def free_port(preferred: int | None = None) -> int:
    """``preferred`` when it is free, else a free port on 127.0.0.1 below the ephemeral range."""
    candidates = [preferred] if preferred else []
    ceiling = _ephemeral_start()
    # not for secrets: the spread only keeps concurrent callers from trying the same ports
    candidates += random.sample(range(_LOWEST, ceiling), _TRIES)
    for port in candidates:
        if _bindable(port):
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ephemeral_start() -> int:
    try:
        return max(_LOWEST + _TRIES, int(_EPHEMERAL_RANGE.read_text().split()[0]))
    except (OSError, ValueError, IndexError):
        return 32_768


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True

"""A TCP proxy on loopback that a test or the emulator can cut, restore, slow down: one device's bad network.

An emulated device with a network fault connects to the broker (or downloads a package) through its own
proxy; ``cut`` closes every open connection and refuses new ones (what a pulled cable or a dead cell link
looks like to the device's MQTT client), ``restore`` lets connections through again. A ``Shaping`` slows
what comes back to the device to a byte rate (a weak link) and drops each of the first connections after a
number of bytes (a link that keeps failing mid-download). Threads, no asyncio: it lives beside the agent's
threads.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from dataclasses import dataclass

__all__ = ["CuttableProxy", "Shaping"]

log = logging.getLogger(__name__)

_CHUNK = 65536


@dataclass(frozen=True, slots=True)
class Shaping:
    """What the link does to the bytes going back to the device.

    ``rate_bytes_s``: at most this many bytes per second (None: as fast as loopback); ``cut_after_bytes``: the
    first ``cuts`` connections are dropped after that many bytes (None: never).
    """

    rate_bytes_s: float | None = None
    cut_after_bytes: int | None = None
    cuts: int = 0


class CuttableProxy:
    """Forwards 127.0.0.1:``port`` to ``target_host``:``target_port`` until ``close``; ``cut``/``restore`` it.

    ``connections`` counts the connections let through, ``dropped`` those a ``shaping`` cut mid-transfer.
    """

    def __init__(self, target_host: str, target_port: int, shaping: Shaping | None = None) -> None:
        self._target = (target_host, target_port)
        self._shaping = shaping or Shaping()
        self.connections = 0
        self.dropped = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._is_cut = False
        self._closed = threading.Event()
        self._acceptor = threading.Thread(target=self._accept, name=f"netcut-{self.port}", daemon=True)
        self._acceptor.start()

    @property
    def is_cut(self) -> bool:
        return self._is_cut

    def cut(self) -> None:
        """Drop every open connection and refuse new ones until ``restore``."""
        with self._lock:
            self._is_cut = True
            sockets, self._open = self._open, set()
        for sock in sockets:
            _close(sock)
        log.info("netcut.cut", extra={"port": self.port})

    def restore(self) -> None:
        """Let connections through again."""
        with self._lock:
            self._is_cut = False
        log.info("netcut.restored", extra={"port": self.port})

    def close(self) -> None:
        """Stop listening and drop every connection."""
        self._closed.set()
        self.cut()
        _close(self._listener)
        self._acceptor.join(5)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                refused = self._is_cut
            if refused:
                _close(client)
                continue
            try:
                upstream = socket.create_connection(self._target, timeout=5)
            except OSError:
                _close(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open.update((client, upstream))
                self.connections += 1
                cut_after = self._shaping.cut_after_bytes if self.connections <= self._shaping.cuts else None
            threading.Thread(target=_pump, args=(client, upstream), name=f"netcut-{self.port}-up", daemon=True).start()
            threading.Thread(
                target=self._pump_back,
                args=(upstream, client, cut_after),
                name=f"netcut-{self.port}-down",
                daemon=True,
            ).start()

    def _pump_back(self, src: socket.socket, dst: socket.socket, cut_after: int | None) -> None:
        """Upstream to the device, at the shaped rate, dropped after ``cut_after`` bytes when given."""
        rate = self._shaping.rate_bytes_s
        # small pieces when throttled, so the rate holds within a fraction of a second
        chunk = _CHUNK if rate is None else max(1, min(_CHUNK, int(rate / 20)))
        sent, started = 0, time.monotonic()
        try:
            while data := src.recv(chunk):
                if cut_after is not None and sent + len(data) >= cut_after:
                    dst.sendall(data[: max(0, cut_after - sent)])
                    with self._lock:
                        self.dropped += 1
                    break
                dst.sendall(data)
                sent += len(data)
                if rate is not None:
                    ahead_s = sent / rate - (time.monotonic() - started)
                    if ahead_s > 0:
                        time.sleep(ahead_s)
        except OSError:
            pass  # the other side or a cut closed the connection: both ends are closed below
        _close(src)
        _close(dst)


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(_CHUNK):
            dst.sendall(data)
    except OSError:
        pass  # the other side or a cut closed the connection: both ends are closed below
    _close(src)
    _close(dst)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()

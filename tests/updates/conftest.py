"""Fixtures of the download tests: a real HTTP file server honouring Range, If-Range and ETag, bad on demand."""

from __future__ import annotations

import hashlib
import random
import re
import socket
import ssl
import subprocess
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support import small_disk_at

_CHUNK = 64 << 10


class Mode(Enum):
    """How the server answers one request: what a good server, a bad network or an attacker does."""

    OK = "ok"
    CUT = "cut"  # headers for the whole body, then `value` bytes, then the connection drops
    STATUS = "status"  # an empty answer with status `value`
    REDIRECT = "redirect"  # 302 to `location`
    LONG_LENGTH = "long-length"  # a Content-Length 10 times the file's, and that many bytes
    ENDLESS = "endless"  # no Content-Length: the file, then zeros until the client hangs up
    TRICKLE = "trickle"  # the body one byte every `value` ms
    STALL = "stall"  # the headers, then nothing
    SLOW_HEADERS = "slow-headers"  # one header byte every `value` ms


@dataclass(frozen=True)
class Step:
    mode: Mode
    value: int = 0
    location: str = ""
    publish: bytes | None = None  # content the server holds from the next request on (a new ETag)


@dataclass(frozen=True)
class Seen:
    range: str | None
    if_range: str | None
    authorization: str | None
    status: int


class FileServer:
    """Serves one file at /file (and anything else as 404) on 127.0.0.1, following a plan of Steps."""

    def __init__(self, content: bytes, tls: ssl.SSLContext | None = None) -> None:
        self.content = content
        self.plan: deque[Step] = deque()
        self.seen: list[Seen] = []
        self.bytes_sent = 0
        self.closing = threading.Event()
        self._lock = threading.Lock()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.files = self
        if tls is not None:
            self._httpd.socket = tls.wrap_socket(self._httpd.socket, server_side=True)
        self.scheme = "http" if tls is None else "https"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), name="file-server", daemon=True)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self._httpd.server_address[1]}/file"

    @property
    def etag(self) -> str:
        return f'"{hashlib.sha256(self.content).hexdigest()[:16]}"'

    def then(self, *steps: Step) -> FileServer:
        self.plan.extend(steps)
        return self

    def next_step(self) -> Step:
        with self._lock:
            return self.plan.popleft() if self.plan else Step(Mode.OK)

    def count(self, sent: int) -> None:
        with self._lock:
            self.bytes_sent += sent

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.closing.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


class _Server(ThreadingHTTPServer):
    files: FileServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients hanging up on a trickle or an endless body are the point of these tests


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        files = self.server.files
        step = files.next_step()
        content, etag = files.content, files.etag
        start = self._range_start(etag)
        status = self._status(step, start, len(content))
        files.seen.append(Seen(self.headers["Range"], self.headers["If-Range"], self.headers["Authorization"], status))
        try:
            self._answer(step, status, content, etag, start)
        finally:
            if step.publish is not None:
                files.content = step.publish

    def _range_start(self, etag: str) -> int:
        match = re.fullmatch(r"bytes=(\d+)-", self.headers["Range"] or "")
        if_range = self.headers["If-Range"]
        return int(match[1]) if match and if_range in (None, etag) else 0

    def _status(self, step: Step, start: int, size: int) -> int:
        if step.mode is Mode.STATUS:
            return step.value
        if step.mode is Mode.REDIRECT:
            return 302
        if self.path != "/file":
            return 404
        if start >= size > 0:
            return 416
        return 206 if start else 200

    def _answer(self, step: Step, status: int, content: bytes, etag: str, start: int) -> None:
        if status >= 300:
            self._empty(status, step.location)
            return
        body = content[start:]
        if step.mode is Mode.SLOW_HEADERS:
            self._slow_headers(step.value)
            return
        self.send_response(status)
        self.send_header("ETag", etag)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(content) - 1}/{len(content)}")
        if step.mode is Mode.ENDLESS:
            self.send_header("Connection", "close")
            self.close_connection = True
        else:
            length = len(body) * 10 if step.mode is Mode.LONG_LENGTH else len(body)
            self.send_header("Content-Length", str(length))
        self.end_headers()
        self._body(step, body)

    def _body(self, step: Step, body: bytes) -> None:
        if step.mode is Mode.CUT:
            self._send(body[: step.value])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
        elif step.mode is Mode.LONG_LENGTH:
            for _ in range(10):
                self._send(body)
        elif step.mode is Mode.ENDLESS:
            self._send(body)
            for _ in range(1000):  # 64 MiB at most, in case a client never hangs up
                self._send(bytes(_CHUNK))
        elif step.mode is Mode.TRICKLE:
            for i in range(len(body)):
                self._send(body[i : i + 1])
                self.wfile.flush()
                if self.server.files.closing.wait(step.value / 1000):
                    return
        elif step.mode is Mode.STALL:
            self.wfile.flush()
            self.server.files.closing.wait(10)
        else:
            self._send(body)

    def _send(self, data: bytes) -> None:
        for i in range(0, len(data), _CHUNK):
            chunk = data[i : i + _CHUNK]
            self.wfile.write(chunk)
            self.server.files.count(len(chunk))

    def _empty(self, status: int, location: str) -> None:
        self.send_response(status)
        if location:
            self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _slow_headers(self, interval_ms: int) -> None:
        self.wfile.write(b"HTTP/1.1 200 OK\r\n")
        for _ in range(10_000):
            self.wfile.write(b"X")
            self.wfile.flush()
            if self.server.files.closing.wait(interval_ms / 1000):
                return


# ~1.2 MiB of noise: more than one fsync interval and many chunks, small enough to stay fast
CONTENT = random.Random(7).randbytes(1_200_003)


@pytest.fixture
def server() -> Iterator[FileServer]:
    files = FileServer(CONTENT)
    files.start()
    yield files
    files.stop()


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    root = tmp_path_factory.mktemp("tls")
    cert, key = root / "cert.pem", root / "key.pem"
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    out = ["-keyout", str(key), "-out", str(cert), "-days", "1"]
    subject = ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
    subprocess.run(["openssl", "req", "-x509", *ec, *out, *subject], check=True, capture_output=True)
    return cert, key


@pytest.fixture
def tls_server(certificate: tuple[Path, Path]) -> Iterator[FileServer]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    files = FileServer(CONTENT, tls=context)
    files.start()
    yield files
    files.stop()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 2 MiB filesystem, unmounted afterwards."""
    with small_disk_at(tmp_path / "disk") as mount:
        yield mount

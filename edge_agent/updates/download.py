"""Fetch an update package over HTTP(S) to disk, resumable and bounded against a hostile or broken server.

Hand-written on :mod:`http.client`: the agent's dependency budget (numpy, one runtime, paho-mqtt, pydantic)
leaves out httpx, requests and urllib3, and :mod:`urllib.request` hides what this module needs: ``read1``
(at most one socket read, so a trickling server cannot hold a read past the deadline), the socket itself
(to shut it at the deadline), and control over redirects and proxies.

The defences, named as TUF names the attacks: no more than ``size_bytes`` is ever read ("endless data");
the whole download, retries included, ends by ``deadline_ts`` ("slow retrieval"); a resume sends
``If-Range`` with the ETag kept in a sidecar, so it never splices bytes of another file version or another
assignment; only a complete file with the expected sha256 is renamed to ``dest``. The ``.part`` file is
fsync'd every ``fsync_every_bytes``, and a resume starts at its length on disk, never at a recorded one,
so a power cut costs at most the bytes since the last fsync.
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import logging
import re
import shutil
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Final
from urllib.parse import urljoin, urlsplit

from edge_agent import durable
from edge_agent.backoff import Backoff
from edge_agent.updates.partial import Partial, Target, cleanup_partials, discard, sha256_of
from edgefleet.errors import DownloadError

__all__ = ["DownloadOptions", "Failure", "cleanup_partials", "download"]

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]

_CHUNK_BYTES: Final = 64 << 10
_MAX_REDIRECTS: Final = 5
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
# the server may answer these differently a moment later; other 4xx are about the request itself
_RETRIED_4XX: Final = frozenset({408, 429})
# socket timeouts and the deadline's watchdog fire this long after the deadline, so that the wall clock agrees
# it has passed when the interrupted read is judged (they run on the monotonic clock)
_PAST_DEADLINE_S: Final = 0.05
_CONTENT_RANGE: Final = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_SHA256_HEX: Final = re.compile(r"[0-9a-f]{64}")


class Failure(StrEnum):
    """The ``reason`` of a :class:`DownloadError`: what the device's "failed" event names."""

    ENDLESS_DATA = "endless-data"  # the server announced or sent more than size_bytes
    SIZE_MISMATCH = "size-mismatch"  # the server's file is shorter than size_bytes
    SLOW_RETRIEVAL = "slow-retrieval"  # the deadline passed while bytes were still coming
    HASH_MISMATCH = "hash-mismatch"
    HTTP_ERROR = "http-error"
    CONNECTION = "connection"
    TLS = "tls"  # the server's certificate failed verification, or the CA file is unusable
    DISK_FULL = "disk-full"
    DISK_ERROR = "disk-error"


# failures of the bytes themselves: nothing on disk is worth resuming
_DISCARDING: Final = frozenset(
    {Failure.ENDLESS_DATA, Failure.SIZE_MISMATCH, Failure.HASH_MISMATCH, Failure.DISK_FULL, Failure.DISK_ERROR}
)


@dataclass(frozen=True, slots=True)
class DownloadOptions:
    """How a download reads, syncs and retries; the defaults suit a Pi on a flaky link."""

    read_timeout_s: float = 30.0  # a silent connection is retried after this (capped by the time left)
    fsync_every_bytes: int = 1 << 20  # a power cut loses at most this much
    ca_file: Path | None = None  # None: the system's CAs
    retry_min_s: float = 1.0  # retries back off from this to retry_max_s, jittered
    retry_max_s: float = 60.0

    def __post_init__(self) -> None:
        if self.read_timeout_s <= 0 or self.fsync_every_bytes <= 0:
            raise ValueError(
                f"read_timeout_s and fsync_every_bytes must be > 0, got {self.read_timeout_s}, {self.fsync_every_bytes}"
            )


@dataclass(frozen=True, slots=True)
class _Job(Target):
    """One download's fixed facts."""

    deadline_ts: float
    headers: Mapping[str, str]
    progress: Progress | None
    options: DownloadOptions
    ssl_context: ssl.SSLContext = field(repr=False)

    def time_left_s(self) -> float:
        return self.deadline_ts - time.time()


class _Retry(Exception):
    """A failure a later attempt may not meet (a cut connection, a 5xx): retried until the deadline."""

    def __init__(self, reason: Failure, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def download(
    url: str,
    dest: Path,
    *,
    size_bytes: int,
    sha256: str,
    deadline_ts: float,
    headers: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    options: DownloadOptions | None = None,
) -> Path:
    """Download ``url`` to ``dest`` (resuming ``dest.part``) and return ``dest``; raises DownloadError.

    ``deadline_ts`` (wall clock) bounds everything, retries included. ``progress(done, total)`` is called
    after each chunk, from this thread. On success ``dest`` holds exactly ``size_bytes`` bytes with the
    given sha256; a ``dest`` already complete returns at once, without a request, so replaying this step
    after a crash is free. After a failure of the bytes themselves (endless data, wrong size or hash, a
    full disk) nothing is left behind; after a network failure the .part stays for the next attempt.
    """
    options = options or DownloadOptions()
    job = _Job(
        url, dest, size_bytes, sha256, deadline_ts, headers or {}, progress, options, _ssl_context(options.ca_file)
    )
    _check(job)
    if _is_complete(job):
        return dest
    try:
        _run(job)
    except DownloadError as err:
        if err.reason in _DISCARDING:
            discard(job)
        log.warning("update.download_failed", extra={"url": _safe_url(url), "reason": err.reason})
        raise
    log.info("update.downloaded", extra={"url": _safe_url(url), "size_bytes": size_bytes})
    return dest


def _check(job: _Job) -> None:
    """Refuse bad arguments before any work starts."""
    if urlsplit(job.url).scheme not in ("http", "https") or not urlsplit(job.url).hostname:
        raise ValueError(f"download needs an http:// or https:// URL with a host, got {_safe_url(job.url)!r}")
    if job.size_bytes < 0:
        raise ValueError(f"size_bytes must be >= 0, got {job.size_bytes}")
    if not _SHA256_HEX.fullmatch(job.sha256):
        raise ValueError(f"sha256 must be 64 lowercase hex digits, got {job.sha256!r}")


def _ssl_context(ca_file: Path | None) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as err:
        raise DownloadError(
            f"cannot load the CA file {ca_file}: {err}", reason=Failure.TLS, hint="check the agent's CA file setting"
        ) from err


def _run(job: _Job) -> None:
    """Fill the .part file, check its sha256, and rename it to ``dest``."""
    try:
        job.dest.parent.mkdir(parents=True, exist_ok=True)
        with Partial.open(job, job.options.fsync_every_bytes) as partial:
            _check_free_space(job, partial)
            _fill(job, partial)
            partial.sync()
            digest = partial.hexdigest()
        if digest != job.sha256:
            raise DownloadError(
                f"{_safe_url(job.url)} has sha256 {digest}, the rollout expects {job.sha256}",
                reason=Failure.HASH_MISMATCH,
                hint="the server holds another file than the one the rollout was built for; check the package",
            )
        durable.rename_atomic(job.part, job.dest)
        job.sidecar.unlink(missing_ok=True)
    except OSError as err:
        # network errors are turned into DownloadError or _Retry where they occur: any OSError here is the disk's
        raise _disk_failure(job, err) from err


def _fill(job: _Job, partial: Partial) -> None:
    """Fetch until the .part holds ``size_bytes``, retrying cut connections and 5xx with backoff until the deadline."""
    backoff = Backoff(job.options.retry_min_s, job.options.retry_max_s)
    attempts = 0
    while partial.size_bytes < job.size_bytes:
        if job.time_left_s() <= 0:
            raise _slow(job, partial)
        attempts += 1
        try:
            _fetch(job, partial)
            backoff.reset()
        except _Retry as err:
            partial.sync()  # a power cut during the pause keeps what already arrived
            delay_s = backoff.next_delay_s()
            if delay_s >= job.time_left_s():
                raise DownloadError(
                    f"{err.message}; gave up at the deadline after {attempts} attempts",
                    reason=err.reason,
                    hint="the .part file is kept: a later rollout command resumes it",
                ) from err
            log.warning(
                "update.download_retry",
                extra={"url": _safe_url(job.url), "reason": err.reason, "delay_s": round(delay_s, 2)},
            )
            time.sleep(delay_s)


def _fetch(job: _Job, partial: Partial) -> None:
    """One GET, following redirects: appends the body to the .part file, or raises _Retry or DownloadError."""
    url, headers = job.url, dict(job.headers)
    for _ in range(_MAX_REDIRECTS + 1):
        conn = _connection(job, url)
        try:
            with (
                _shut_at_deadline(_connect(job, conn), job.deadline_ts),
                # closed here: a "Connection: close" response owns the socket, conn.close() leaves it open
                _request(job, conn, url, headers | partial.range_headers()) as response,
            ):
                if response.status not in _REDIRECTS:
                    _receive(job, partial, response)
                    return
                url, headers = _redirect(url, response, headers)
        finally:
            conn.close()
    raise DownloadError(
        f"{_safe_url(job.url)} redirects more than {_MAX_REDIRECTS} times",
        reason=Failure.HTTP_ERROR,
        hint="point the rollout at the package's final URL",
    )


def _connection(job: _Job, url: str) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    timeout_s = max(0.001, min(job.options.read_timeout_s, job.time_left_s() + _PAST_DEADLINE_S))
    if parts.scheme == "https":
        return http.client.HTTPSConnection(parts.hostname or "", parts.port, timeout=timeout_s, context=job.ssl_context)
    return http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout_s)


@contextlib.contextmanager
def _shut_at_deadline(sock: socket.socket, deadline_ts: float) -> Iterator[None]:
    """Shut the connection's socket at the deadline, whatever read it is in.

    Socket timeouts bound each read, not their sum: a server trickling one header byte per second would
    keep ``getresponse`` going for days. Shutting the socket ends any read at once.
    """
    timer = threading.Timer(max(0.0, deadline_ts - time.time() + _PAST_DEADLINE_S), _shut, args=(sock,))
    timer.name = "download-deadline"
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        timer.join(timeout=1.0)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed: nothing left to end
        # the plain socket's shutdown: SSLSocket's own would drop its TLS state under the reading thread
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _connect(job: _Job, conn: http.client.HTTPConnection) -> socket.socket:
    """Connect (and for https, handshake) within the time left; returns the socket."""
    try:
        conn.connect()
    except (OSError, http.client.HTTPException) as err:
        raise _network_failure(job, err) from err
    return conn.sock


def _request(
    job: _Job, conn: http.client.HTTPConnection, url: str, headers: Mapping[str, str]
) -> http.client.HTTPResponse:
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        # identity: the sha256 and size are of the file, not of some compressed form of it
        conn.request("GET", target, headers={"Accept-Encoding": "identity", **headers})
        return conn.getresponse()
    except (OSError, http.client.HTTPException) as err:
        raise _network_failure(job, err) from err


def _redirect(url: str, response: http.client.HTTPResponse, headers: dict[str, str]) -> tuple[str, dict[str, str]]:
    """The next URL and headers; refuses a downgrade to http, and keeps the token away from another host."""
    location = response.getheader("Location")
    if not location:
        raise DownloadError(
            f"{_safe_url(url)} answered {response.status} without a Location", reason=Failure.HTTP_ERROR
        )
    target = urljoin(url, location)
    old, new = urlsplit(url), urlsplit(target)
    if new.scheme not in ("http", "https") or (old.scheme, new.scheme) == ("https", "http"):
        raise DownloadError(
            f"refusing the redirect from {_safe_url(url)} to {_safe_url(target)}",
            reason=Failure.HTTP_ERROR,
            hint="a package must not leave https; check the server's redirects",
        )
    if new.netloc != old.netloc:
        headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
    return target, headers


def _receive(job: _Job, partial: Partial, response: http.client.HTTPResponse) -> None:
    """Append the response's body to the .part file, reading no byte past ``size_bytes``."""
    start, length = _body_span(job, partial, response)
    if start == 0:
        partial.begin(_strong_etag(response.getheader("ETag")))
    remaining = length
    while remaining:
        if job.time_left_s() <= 0:
            raise _slow(job, partial)
        data = _read(job, response, min(_CHUNK_BYTES, remaining))
        if not data:
            if job.time_left_s() <= 0:
                raise _slow(job, partial)  # the deadline's watchdog shut the socket
            raise _Retry(Failure.CONNECTION, f"the connection closed at byte {partial.size_bytes} of {job.size_bytes}")
        partial.append(data)
        remaining -= len(data)
        if job.progress is not None:
            job.progress(partial.size_bytes, job.size_bytes)
    if response.length is None and _has_more(response):
        raise DownloadError(
            f"{_safe_url(job.url)} sends more than the {job.size_bytes} bytes of the package",
            reason=Failure.ENDLESS_DATA,
            hint="the server is broken or hostile; check the package URL of the rollout",
        )


def _body_span(job: _Job, partial: Partial, response: http.client.HTTPResponse) -> tuple[int, int]:
    """Check the status and framing headers; returns where the body starts in the file and its length."""
    if response.status == 200:
        start, length = 0, job.size_bytes
    elif response.status == 206:
        start, end = _content_range(job, partial, response.getheader("Content-Range"))
        length = end - start + 1
    else:
        raise _status_failure(job, partial, response)
    # http.client parses Content-Length into .length (None when absent or chunked)
    if response.length is not None and response.length != length:
        if response.status == 200:
            raise _size_failure(job, response.length, "Content-Length")
        raise DownloadError(
            f"{_safe_url(job.url)} sends a Content-Length of {response.length} for a range of {length} bytes",
            reason=Failure.ENDLESS_DATA if response.length > length else Failure.SIZE_MISMATCH,
        )
    return start, length


def _content_range(job: _Job, partial: Partial, header: str | None) -> tuple[int, int]:
    """The first and last byte of a 206 answer, checked against what was asked and the package's size."""
    match = _CONTENT_RANGE.fullmatch(header or "")
    if match is None or match[3] == "*":
        raise DownloadError(
            f"{_safe_url(job.url)} answered 206 with Content-Range {header!r}", reason=Failure.HTTP_ERROR
        )
    start, end, total = int(match[1]), int(match[2]), int(match[3])
    if total != job.size_bytes:
        raise _size_failure(job, total, "Content-Range")
    if start != partial.size_bytes or not start <= end < total:
        raise DownloadError(
            f"{_safe_url(job.url)} answered bytes {start}-{end} to a request from byte {partial.size_bytes}",
            reason=Failure.HTTP_ERROR,
        )
    return start, end


def _read(job: _Job, response: http.client.HTTPResponse, size: int) -> bytes:
    try:
        return response.read1(size)
    except (OSError, http.client.HTTPException) as err:
        raise _network_failure(job, err) from err


def _has_more(response: http.client.HTTPResponse) -> bool:
    """Whether a body without Content-Length goes on past the package's end."""
    try:
        return bool(response.read1(1))
    except (OSError, http.client.HTTPException):
        return False  # a server that stops sending has nothing more; the sha256 judges what came


def _strong_etag(etag: str | None) -> str | None:
    # If-Range takes only strong validators (RFC 9110, 13.1.5): a weak one cannot guard a resume
    return None if etag is None or etag.startswith("W/") else etag


def _is_complete(job: _Job) -> bool:
    """Whether ``dest`` already holds the package (a replay after a crash between rename and journal)."""
    try:
        if job.dest.stat().st_size != job.size_bytes:
            return False
        return sha256_of(job.dest, job.size_bytes).hexdigest() == job.sha256
    except FileNotFoundError:
        return False


def _check_free_space(job: _Job, partial: Partial) -> None:
    needed = job.size_bytes - partial.size_bytes
    free = shutil.disk_usage(job.part.parent).free
    if free < needed:
        raise DownloadError(
            f"the disk is full: {needed} more bytes are needed under {job.part.parent}, {free} are free",
            reason=Failure.DISK_FULL,
            hint="free space on the device (old logs, packages), then send the rollout again",
        )


def _network_failure(job: _Job, err: Exception) -> DownloadError | _Retry:
    if isinstance(err, ssl.SSLCertVerificationError):
        return DownloadError(
            f"{_safe_url(job.url)} presents a certificate that fails verification: {err.verify_message}",
            reason=Failure.TLS,
            hint="check the server's certificate and the agent's CA file",
        )
    if job.time_left_s() <= 0:
        return DownloadError(
            f"{_safe_url(job.url)} was still sending when the deadline passed",
            reason=Failure.SLOW_RETRIEVAL,
            hint="the link or the server is too slow for the rollout's deadline; the .part file is kept",
        )
    return _Retry(Failure.CONNECTION, f"the connection to {_safe_url(job.url)} failed: {err!r}")


def _slow(job: _Job, partial: Partial) -> DownloadError:
    return DownloadError(
        f"{_safe_url(job.url)} sent {partial.size_bytes} of {job.size_bytes} bytes by the deadline",
        reason=Failure.SLOW_RETRIEVAL,
        hint="the link or the server is too slow for the rollout's deadline; the .part file is kept",
    )


def _status_failure(job: _Job, partial: Partial, response: http.client.HTTPResponse) -> DownloadError | _Retry:
    status, url = response.status, _safe_url(job.url)
    if status >= 500 or status in _RETRIED_4XX:
        return _Retry(Failure.HTTP_ERROR, f"{url} answered {status} {response.reason}")
    if status == 416:
        return DownloadError(
            f"{url} has no bytes from {partial.size_bytes} on, but the package is {job.size_bytes} bytes",
            reason=Failure.SIZE_MISMATCH,
            hint="the server's file is shorter than the rollout says; check the package",
        )
    hints = {
        401: "the server refused the device's token; check its credentials",
        403: "the server refused the device's token; check its credentials",
        404: "the package is not on the server; check the rollout's package URL",
    }
    return DownloadError(
        f"{url} answered {status} {response.reason}", reason=Failure.HTTP_ERROR, hint=hints.get(status, "")
    )


def _size_failure(job: _Job, announced: int, header: str) -> DownloadError:
    if announced > job.size_bytes:
        return DownloadError(
            f"{_safe_url(job.url)} announces {announced} bytes in {header}, the package has {job.size_bytes}",
            reason=Failure.ENDLESS_DATA,
            hint="the server is broken or hostile; check the package URL of the rollout",
        )
    return DownloadError(
        f"{_safe_url(job.url)} announces {announced} bytes in {header}, the package has {job.size_bytes}",
        reason=Failure.SIZE_MISMATCH,
        hint="the server's file is not the one the rollout was built for; check the package",
    )


def _disk_failure(job: _Job, err: OSError) -> DownloadError:
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return DownloadError(
            f"the disk is full while writing {job.part}",
            reason=Failure.DISK_FULL,
            hint="free space on the device (old logs, packages), then send the rollout again",
        )
    return DownloadError(f"cannot write {job.part}: {err}", reason=Failure.DISK_ERROR, hint="check the device's disk")


def _safe_url(url: str) -> str:
    """The URL without credentials or query, which may carry a token: fit for logs and messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}{parts.path}"

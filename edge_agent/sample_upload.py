"""Send the reservoir's samples to the server when it asks (``upload-samples``), on a thread of their own.

The device sits behind NAT, so the server never connects to it: the command names a URL, and the device POSTs
one .npz there with its own token (the one it downloads packages with). Written on :mod:`http.client`, as the
package download is: the agent's dependency budget has no HTTP library.
"""

from __future__ import annotations

import http.client
import logging
import ssl
import threading
from collections.abc import Callable
from urllib.parse import urlsplit

from edge_agent.reservoir import Reservoir
from edgefleet.errors import AgentError
from edgefleet.messages import UploadSamplesCommand

__all__ = ["SampleUploader", "post_samples"]

log = logging.getLogger(__name__)

_TIMEOUT_S = 60.0


def post_samples(reservoir: Reservoir, command: UploadSamplesCommand, token: str | None) -> int:
    """POST the kept samples to ``command.url`` and forget them once the server took them; returns how many were
    sent (0 when there are none: an empty upload tells the server so). Raises AgentError with the server's answer.
    """
    try:
        batch = reservoir.take(command.max_count, command.max_bytes)
    except OSError as err:
        raise AgentError(
            f"the kept samples cannot be read: {err}", hint="check the agent's data_dir disk; the samples may be lost"
        ) from err
    payload, count = (batch.payload, batch.count) if batch is not None else (b"", 0)
    parts = urlsplit(command.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AgentError(f"the upload URL {command.url!r} is not http(s)", hint="check the server's public_url")
    headers = {"Content-Type": "application/octet-stream", "Content-Length": str(len(payload))}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    conn: http.client.HTTPConnection = (
        http.client.HTTPSConnection(
            parts.hostname, parts.port, timeout=_TIMEOUT_S, context=ssl.create_default_context()
        )
        if parts.scheme == "https"
        else http.client.HTTPConnection(parts.hostname, parts.port, timeout=_TIMEOUT_S)
    )
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        conn.request("POST", target, body=payload, headers=headers)
        response = conn.getresponse()
        answer = response.read(4096).decode(errors="replace")
    except (OSError, http.client.HTTPException) as err:
        raise AgentError(
            f"cannot send samples to {parts.scheme}://{parts.netloc}: {err}", hint="check the server is reachable"
        ) from err
    finally:
        conn.close()
    if not 200 <= response.status < 300:
        raise AgentError(
            f"the server refused the samples ({response.status}): {answer[:500]}",
            hint="check the device's token (updates.auth_token) and the server's sample limits",
        )
    if count:
        reservoir.clear()
    return count


class SampleUploader:
    """Runs one upload at a time off the inference thread; a request that arrives during one is dropped (the
    server asks again)."""

    def __init__(
        self, reservoir: Reservoir, token: str | None, on_failure: Callable[[str], None], device_id: str
    ) -> None:
        self._reservoir = reservoir
        self._token = token
        self._on_failure = on_failure
        self._device_id = device_id
        self._thread: threading.Thread | None = None

    def submit(self, command: UploadSamplesCommand) -> None:
        """Start sending; returns at once."""
        if self._thread is not None and self._thread.is_alive():
            log.warning("samples.upload_busy", extra={"device": self._device_id, "request": command.request_id})
            return
        self._thread = threading.Thread(
            target=self._send, args=(command,), name="edgefleet-samples-upload", daemon=True
        )
        self._thread.start()

    def join(self, timeout_s: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _send(self, command: UploadSamplesCommand) -> None:
        try:
            count = post_samples(self._reservoir, command, self._token)
        except AgentError as err:
            log.warning("samples.upload_failed", extra={"device": self._device_id, "error": err.message})
            self._on_failure(f"samples upload {command.request_id} failed: {err.message} ({err.hint})")
            return
        log.info("samples.uploaded", extra={"device": self._device_id, "request": command.request_id, "count": count})

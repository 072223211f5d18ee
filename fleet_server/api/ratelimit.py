"""Rate limits on the routes a guesser or a flood aims at: enrollment, dashboard sign-in, refused bearer tokens.

In-memory token buckets per client address (one server process; each worker keeps its own, which multiplies
the allowance by the number of workers, never divides it). Only enrollment is charged for every request (each
one writes to the database); sign-in and token-bearing requests are charged only when refused (401), so people
and devices using valid credentials are never slowed, however many requests they send. An address whose bucket
is empty gets 429 with ``Retry-After`` until it refills, right credentials or not.

The address is the TCP peer: behind a reverse proxy every client shares the proxy's, so set the limits for that
(or limit at the proxy).
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fleet_server.settings import RateLimitSettings

__all__ = ["RateLimitMiddleware", "RateLimiter", "RateLimits", "client_address", "too_many"]

_MAX_KEYS: Final = 100_000  # addresses remembered at most; the least recently seen are forgotten first
_ENROLL_PATH: Final = "/api/v1/devices/enroll"
_SIGNIN_PATH: Final = "/dashboard/login"
_SESSION_COOKIE: Final = b"ef_dashboard="


class RateLimiter:
    """Token buckets by key: ``burst`` tries at once, refilled at ``per_s``; thread-safe."""

    def __init__(self, burst: int, per_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.burst, self.per_s = burst, per_s
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)
        self._lock = threading.Lock()

    def wait_s(self, key: str) -> float:
        """Seconds until ``key`` may try again (0.0: now), without spending a try."""
        with self._lock:
            tokens = self._refilled(key)
            return 0.0 if tokens >= 1 else (1 - tokens) / self.per_s

    def take(self, key: str) -> float:
        """Spend one try of ``key``: 0.0 when it had one, else the seconds until it has (nothing is spent)."""
        with self._lock:
            tokens = self._refilled(key)
            if tokens < 1:
                return (1 - tokens) / self.per_s
            self._buckets[key] = (tokens - 1, self._clock())
            self._buckets.move_to_end(key)
            while len(self._buckets) > _MAX_KEYS:
                self._buckets.popitem(last=False)
            return 0.0

    def _refilled(self, key: str) -> float:
        tokens, at = self._buckets.get(key, (float(self.burst), self._clock()))
        return min(float(self.burst), tokens + (self._clock() - at) * self.per_s)


@dataclass(frozen=True, slots=True)
class RateLimits:
    """The server's buckets, one per thing limited."""

    enroll: RateLimiter  # per address, every enrollment request
    enroll_token_failures: RateLimiter  # per provisioning token id, refused enrollments
    signin_failures: RateLimiter  # per address, refused dashboard sign-ins
    auth_failures: RateLimiter  # per address, refused bearer tokens or session cookies

    @classmethod
    def from_settings(cls, settings: RateLimitSettings) -> RateLimits:
        return cls(
            enroll=RateLimiter(settings.enroll_burst, settings.enroll_per_s),
            enroll_token_failures=RateLimiter(
                settings.enroll_token_failures_burst, settings.enroll_token_failures_per_s
            ),
            signin_failures=RateLimiter(settings.signin_failures_burst, settings.signin_failures_per_s),
            auth_failures=RateLimiter(settings.auth_failures_burst, settings.auth_failures_per_s),
        )


def client_address(scope: Scope) -> str:
    """The TCP peer's address of a request (``"unknown"`` when the server is not told, as in some test clients)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def too_many(wait_s: float, what: str) -> HTTPException:
    """The 429 answer for a limit reached, with the seconds to wait in ``Retry-After``."""
    seconds = max(1, math.ceil(wait_s))
    return HTTPException(
        429, detail=f"too many {what} from here: try again in {seconds} s", headers={"Retry-After": str(seconds)}
    )


class RateLimitMiddleware:
    """Applies the per-address limits before a request reaches its route, and charges refusals after."""

    def __init__(self, app: ASGIApp, limits: RateLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        address = client_address(scope)
        limiter, what = self._failure_limiter(scope)
        if scope["method"] == "POST" and scope["path"] == _ENROLL_PATH:
            wait_s = self.limits.enroll.take(address)
            if wait_s:
                await _refuse(send, too_many(wait_s, "enrollments"))
                return
        if limiter is not None:
            wait_s = limiter.wait_s(address)
            if wait_s:
                await _refuse(send, too_many(wait_s, what))
                return

        async def charge_refusals(message: Message) -> None:
            if limiter is not None and message["type"] == "http.response.start" and message["status"] == 401:
                limiter.take(address)
            await send(message)

        await self.app(scope, receive, charge_refusals)

    def _failure_limiter(self, scope: Scope) -> tuple[RateLimiter | None, str]:
        if scope["method"] == "POST" and scope["path"] == _SIGNIN_PATH:
            return self.limits.signin_failures, "failed sign-ins"
        for name, value in scope["headers"]:
            if name == b"authorization" or (name == b"cookie" and _SESSION_COOKIE in value):
                return self.limits.auth_failures, "requests with a refused token"
        return None, ""


async def _refuse(send: Send, err: HTTPException) -> None:
    body = json.dumps({"detail": err.detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in (err.headers or {}).items()]
    await send({"type": "http.response.start", "status": err.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})

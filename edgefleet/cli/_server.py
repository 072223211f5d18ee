"""The fleet server as the command line reaches it: an httpx client with the caller's token, and one clear error
when the server cannot be reached."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from edgefleet.errors import InputError

if TYPE_CHECKING:
    import httpx

__all__ = ["server_client"]


@contextlib.contextmanager
def server_client(server: str, token: str | None, timeout_s: float = 30.0) -> Iterator[httpx.Client]:
    """A client for ``server`` that sends ``token``; raises InputError when the server cannot be reached."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with httpx.Client(base_url=server, timeout=timeout_s, headers=headers) as client:
            yield client
    except httpx.TransportError as err:
        raise InputError(
            f"cannot reach the fleet server at {server}: {err}",
            hint="start it with `edgefleet server`, or pass --server / EDGEFLEET_SERVER_URL",
        ) from err

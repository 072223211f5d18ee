"""The fleet server as the command line reaches it: an httpx client with the caller's token, and one clear error
when the server cannot be reached."""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from edgefleet.errors import InputError, ServerError

if TYPE_CHECKING:
    import httpx

__all__ = ["answer", "server_client"]


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


def answer(
    response: httpx.Response,
    *,
    hints: Mapping[int, str] | None = None,
    default_hint: str = "",
    input_codes: Collection[int] = (),
    json: bool = True,
) -> Any:
    """The server's JSON answer (None with ``json=False``), or its refusal raised with its detail: InputError for
    ``input_codes`` (the caller's input was wrong), ServerError otherwise, with ``hints``' line for the status."""
    if response.is_success:
        return response.json() if json else None
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        detail = response.text
    error = InputError if response.status_code in input_codes else ServerError
    hint = (hints or {}).get(response.status_code, default_hint)
    raise error(f"the server answered {response.status_code}: {detail}", hint=hint)

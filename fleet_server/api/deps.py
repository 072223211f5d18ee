"""Typed dependencies: a route's signature states what it needs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from fleet_server.auth import GRANTS, Caller, NotAuthenticated, Role, authenticate, grants
from fleet_server.runtime import Runtime

__all__ = [
    "CallerDep",
    "RoleRequirement",
    "RuntimeDep",
    "SessionDep",
    "get_caller",
    "get_db",
    "get_runtime",
    "require",
    "require_own_device_or",
]


def get_runtime(request: Request) -> Runtime:
    """The running server's state."""
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_db(runtime: RuntimeDep) -> Iterator[Session]:
    """A database session for one request."""
    with runtime.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_db)]


_bearer = HTTPBearer(auto_error=False, description="an API token, eft_<id>_<secret>")


def get_caller(
    session: SessionDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Caller:
    """The caller the request's bearer token stands for; 401 with ``WWW-Authenticate: Bearer`` otherwise."""
    if credentials is None:
        raise HTTPException(
            401,
            detail="this route needs an API token (send Authorization: Bearer <token>; the first admin token is in "
            "the server's admin.token file, and an admin creates more with POST /api/v1/tokens)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    try:
        return authenticate(session, credentials.credentials, datetime.now(UTC))
    except NotAuthenticated as err:
        # RFC 6750: a token was sent but is not valid
        raise HTTPException(401, detail=str(err), headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}) from err


CallerDep = Annotated[Caller, Depends(get_caller)]


@dataclass(frozen=True, slots=True)
class RoleRequirement:
    """The roles a route accepts; its bound ``check`` methods are the dependencies (``require`` hands them out).

    Routes name the least role they need: ``Role.VIEWER`` lets viewers, operators and admins through (GRANTS).
    """

    roles: tuple[Role, ...]

    def check(self, caller: CallerDep) -> Caller:
        """The caller when its role grants one of ``roles``, else 403 naming the roles needed."""
        if any(grants(caller.role, needed) for needed in self.roles):
            return caller
        raise HTTPException(403, detail=self._refusal(caller))

    def check_own_device(self, device_id: Annotated[str, Path()], caller: CallerDep) -> Caller:
        """As ``check``, but a device's token passes only for the ``{device_id}`` in the path that is its own."""
        if caller.role is not Role.DEVICE:
            return self.check(caller)
        if caller.device_id == device_id:
            return caller
        raise HTTPException(
            403,
            detail=f"a device token reaches only its own device's routes: this token is device "
            f"{caller.device_id}'s, not {device_id}'s (use that device's own token)",
        )

    def _refusal(self, caller: Caller) -> str:
        holders = sorted({held for held, granted in GRANTS.items() if granted & set(self.roles)})
        return (
            f"this route needs the {' or '.join(self.roles)} role, which {', '.join(holders)} tokens have; "
            f"token {caller.token_id} ({caller.name}) is a {caller.role} token "
            "(use a token with one of those roles; an admin creates them with POST /api/v1/tokens)"
        )


def require(*roles: Role) -> Callable[[Caller], Caller]:
    """A dependency admitting callers whose role grants one of ``roles``: 401 without a valid token, else 403.

    One line per route or router: ``dependencies=[Depends(require(Role.OPERATOR))]``.
    """
    return RoleRequirement(roles).check


def require_own_device_or(*roles: Role) -> Callable[[str, Caller], Caller]:
    """As ``require(*roles, Role.DEVICE)``, but a device passes only for its own ``{device_id}`` path parameter."""
    return RoleRequirement((*roles, Role.DEVICE)).check_own_device

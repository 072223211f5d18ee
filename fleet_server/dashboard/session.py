"""Who is looking at the dashboard: the API token a person pasted, kept in an HttpOnly cookie, and CSRF checks.

The cookie holds the API token itself, so every request authenticates exactly as the API does (a revoked or
expired token ends the session at once) and the server keeps no session table. The cookie is HttpOnly (no
script reads it) and SameSite=Strict (no other site's page sends it). Cookie-authenticated POSTs also carry a
CSRF token derived from the API token (see ``csrf_token``) and must come from this origin.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Annotated, Final

from fastapi import Depends, HTTPException, Request, Response
from sqlalchemy.orm import Session

from fleet_server.api.deps import RoleRequirement, SessionDep
from fleet_server.auth import Caller, NotAuthenticated, Role, authenticate, grants

__all__ = [
    "COOKIE",
    "Viewer",
    "ViewerDep",
    "check_origin",
    "clear_cookie",
    "csrf_token",
    "login",
    "require_csrf",
    "require_operator",
    "set_cookie",
    "viewer_of",
]

COOKIE: Final = "ef_dashboard"
_PATH: Final = "/dashboard"
_MAX_AGE_S: Final = 12 * 3600  # a working day; the token's own expiry still applies


class Viewer:
    """A signed-in person: the caller the cookie's token stands for, and what the pages may offer them."""

    __slots__ = ("caller", "csrf")

    def __init__(self, caller: Caller, token: str) -> None:
        self.caller = caller
        self.csrf = csrf_token(token)

    @property
    def can_act(self) -> bool:
        """True when the role may pause, resume and abort rollouts (the API's operator routes)."""
        return grants(self.caller.role, Role.OPERATOR)


def csrf_token(api_token: str) -> str:
    """The CSRF token of a session: a hash of its API token under a label of its own.

    Only someone who holds the API token can compute it, and the page that shows it is only served to that
    session; it is not the hash the database stores (that one has no label), so a copy of the database
    does not give it away either.
    """
    return hashlib.sha256(f"edgefleet-dashboard-csrf:{api_token}".encode()).hexdigest()


def login(session: Session, token: str, now: datetime) -> Caller:
    """The caller ``token`` stands for, when a person may sign in with it; raises NotAuthenticated otherwise."""
    caller = authenticate(session, token.strip(), now)
    if caller.role is Role.DEVICE:
        raise NotAuthenticated(
            "this is a device's token; the dashboard is for people (sign in with an admin, operator or viewer "
            "token: an admin creates one with POST /api/v1/tokens)"
        )
    return caller


def set_cookie(response: Response, request: Request, token: str) -> None:
    """Keep ``token`` in the session cookie: HttpOnly, SameSite=Strict, Secure when served over HTTPS."""
    response.set_cookie(
        COOKIE,
        token.strip(),
        max_age=_MAX_AGE_S,
        path=_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear_cookie(response: Response) -> None:
    """End the session in the browser."""
    response.delete_cookie(COOKIE, path=_PATH, httponly=True, samesite="strict")


def viewer_of(request: Request, session: SessionDep) -> Viewer:
    """The signed-in person behind the request's cookie; 401 without one or when its token no longer holds."""
    token = request.cookies.get(COOKIE)
    if not token:
        raise HTTPException(401, detail="sign in to the dashboard first (/dashboard/login)")
    try:
        caller = login(session, token, datetime.now(UTC))
    except NotAuthenticated as err:
        raise HTTPException(401, detail=f"{err} (sign in again at /dashboard/login)") from err
    return Viewer(caller, token)


ViewerDep = Annotated[Viewer, Depends(viewer_of)]


def check_origin(request: Request) -> None:
    """Refuse (403) a POST whose Origin or Referer names another site; browsers send one of them on POSTs."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if origin is None or origin == "null":
        return
    own = f"{request.url.scheme}://{request.url.netloc}"
    if origin != own and not origin.startswith(own + "/"):
        raise HTTPException(403, detail=f"a dashboard form was posted from {origin}, not from {own} (refused)")


def require_csrf(request: Request, viewer: Viewer, submitted: str | None) -> None:
    """Refuse (403) a cookie-authenticated POST without this session's CSRF token or from another origin."""
    check_origin(request)
    if not submitted or not hmac.compare_digest(submitted, viewer.csrf):
        raise HTTPException(403, detail="the form's CSRF token is missing or wrong (reload the page and try again)")


def require_operator(viewer: Viewer) -> Caller:
    """The viewer's caller when the role may act, through the API's own check: 403 naming the roles otherwise."""
    return RoleRequirement((Role.OPERATOR,)).check(viewer.caller)

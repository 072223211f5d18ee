"""The dashboard's routes under ``/dashboard``: sign-in, the four pages, chart data, live updates and actions."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Final, Literal
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

import edgefleet
from fleet_server.api.deps import RuntimeDep, SessionDep
from fleet_server.api.routes import rollouts
from fleet_server.auth import NotAuthenticated
from fleet_server.dashboard import drift_view, live, views
from fleet_server.dashboard.filters import install_filters
from fleet_server.dashboard.session import (
    COOKIE,
    Viewer,
    ViewerDep,
    check_origin,
    clear_cookie,
    login,
    require_csrf,
    require_operator,
    set_cookie,
    viewer_of,
)

__all__ = [
    "SignInNeeded",
    "act_on_rollout",
    "device_drift",
    "device_series",
    "device_view",
    "events",
    "install",
    "login_page",
    "models_view",
    "overview_page",
    "rollouts_view",
    "router",
    "sign_in",
    "sign_out",
]

_HERE: Final = Path(__file__).parent
# nothing but this server: no CDN, no inline script (styles inline only for widths and colours the server computes)
_CSP: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
_HEADERS: Final = {
    "Content-Security-Policy": _CSP,
    "X-Frame-Options": "DENY",  # the action buttons must not be clickable through another site's frame
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

templates = Jinja2Templates(directory=_HERE / "templates")
install_filters(templates.env)
router = APIRouter(prefix="/dashboard", include_in_schema=False)


class SignInNeeded(Exception):
    """A page was asked for without a valid session: the answer is the sign-in page."""

    def __init__(self, next_path: str, *, expired: bool) -> None:
        super().__init__(next_path)
        self.next_path = next_path
        self.expired = expired


def _page_viewer(request: Request, session: SessionDep) -> Viewer:
    try:
        return viewer_of(request, session)
    except HTTPException as err:
        raise SignInNeeded(request.url.path, expired=bool(request.cookies.get(COOKIE))) from err


PageViewerDep = Annotated[Viewer, Depends(_page_viewer)]


async def _form(request: Request) -> dict[str, str]:
    # urlencoded forms only: python-multipart is not a dependency, and the dashboard posts no files
    body = (await request.body()).decode("utf-8", errors="replace")
    return {key: values[-1] for key, values in parse_qs(body, max_num_fields=20).items()}


FormDep = Annotated[dict[str, str], Depends(_form)]


def _render(
    request: Request, name: str, context: dict[str, Any], viewer: Viewer | None, status: int = 200
) -> HTMLResponse:
    response = templates.TemplateResponse(
        request,
        name,
        {"viewer": viewer, "version": edgefleet.__version__, **context},
        status_code=status,
        headers=_HEADERS,
    )
    return response


def _error(request: Request, viewer: Viewer | None, err: HTTPException) -> HTMLResponse:
    return _render(request, "error.html", {"status": err.status_code, "detail": err.detail}, viewer, err.status_code)


@router.get("/login")
def login_page(request: Request, next: str = "/dashboard", expired: bool = False) -> HTMLResponse:
    """The sign-in form: paste an API token."""
    reason = "your session's token is no longer valid (expired or revoked): sign in again" if expired else ""
    return _render(request, "login.html", {"next": _safe_next(next), "reason": reason}, None)


@router.post("/login")
def sign_in(request: Request, session: SessionDep, form: FormDep) -> Response:
    """Check the pasted token as the API would and keep it in the session cookie; the form again on failure."""
    check_origin(request)
    next_path = _safe_next(form.get("next", "/dashboard"))
    token = form.get("token", "")
    try:
        login(session, token, datetime.now(UTC))
    except NotAuthenticated as err:
        context = {"next": next_path, "reason": str(err)}
        return _render(request, "login.html", context, None, status=401)
    response = RedirectResponse(next_path, status_code=303)
    set_cookie(response, request, token)
    return response


@router.post("/logout")
def sign_out(request: Request, viewer: ViewerDep, form: FormDep) -> Response:
    """End the session in this browser (the token itself stays valid for the API)."""
    require_csrf(request, viewer, form.get("csrf"))
    response = RedirectResponse("/dashboard/login", status_code=303)
    clear_cookie(response)
    return response


@router.get("")
def overview_page(request: Request, viewer: PageViewerDep, session: SessionDep, runtime: RuntimeDep) -> HTMLResponse:
    """The fleet at a glance."""
    return _render(request, "overview.html", {"page": "overview", "o": views.overview(session, runtime)}, viewer)


@router.get("/devices/{device_id}")
def device_view(
    device_id: str, request: Request, viewer: PageViewerDep, session: SessionDep, runtime: RuntimeDep
) -> HTMLResponse:
    """One device: status, latency and throughput, drift per feature, events."""
    try:
        page = views.device_page(session, runtime, device_id)
    except HTTPException as err:
        return _error(request, viewer, err)
    return _render(request, "device.html", {"page": "device", "d": page}, viewer)


@router.get("/devices/{device_id}/series.json")
def device_series(device_id: str, _viewer: ViewerDep, session: SessionDep) -> JSONResponse:
    """The device's latency and throughput columns for its chart."""
    return JSONResponse(views.device_series(session, device_id), headers={"Cache-Control": "no-store"})


@router.get("/devices/{device_id}/drift.json")
def device_drift(device_id: str, _viewer: ViewerDep, session: SessionDep, runtime: RuntimeDep) -> JSONResponse:
    """The device's per-feature histograms, live against reference, for its drift charts."""
    drift = drift_view.device_drift(session, device_id, datetime.now(UTC), runtime.settings.drift)
    features = [] if drift is None else drift.features
    body = {
        "level": None if drift is None else drift.level,
        "note": "" if drift is None else drift.note,
        "estimated_accuracy": None if drift is None else drift.estimated_accuracy,
        "features": [
            {"name": f.name, "edges": f.edges, "reference": f.reference, "live": f.live, "psi": f.psi, "level": f.level}
            for f in features
        ],
    }
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


@router.get("/models")
def models_view(request: Request, viewer: PageViewerDep, session: SessionDep, runtime: RuntimeDep) -> HTMLResponse:
    """Every model version with float against quantized metrics and its export figures."""
    return _render(request, "models.html", {"page": "models", "m": views.models_page(session, runtime)}, viewer)


@router.get("/rollouts")
def rollouts_view(request: Request, viewer: PageViewerDep, session: SessionDep) -> HTMLResponse:
    """Every rollout: waves, gates against thresholds, progress, and the operator's buttons."""
    return _render(request, "rollouts.html", {"page": "rollouts", "rollouts": views.rollout_views(session)}, viewer)


@router.post("/rollouts/{rollout_id}/{action}")
def act_on_rollout(
    rollout_id: str,
    action: Literal["pause", "resume", "abort"],
    request: Request,
    viewer: ViewerDep,
    session: SessionDep,
    runtime: RuntimeDep,
    form: FormDep,
) -> Response:
    """Pause, resume or abort through the API's own route and role check; 403 for a viewer or a forged form."""
    try:
        require_csrf(request, viewer, form.get("csrf"))
        caller = require_operator(viewer)
        reason = rollouts.ActionIn(reason=form.get("reason", "")[:2000])
        if action == "pause":
            rollouts.pause_rollout(rollout_id, reason, session, caller)
        elif action == "resume":
            rollouts.resume_rollout(rollout_id, session, caller)
        else:
            rollouts.abort_rollout(rollout_id, reason, session, runtime, caller)
    except HTTPException as err:
        return _error(request, viewer, err)
    return RedirectResponse(f"/dashboard/rollouts#{quote(rollout_id)}", status_code=303)


@router.get("/events")
def events(request: Request, _viewer: ViewerDep, runtime: RuntimeDep) -> StreamingResponse:
    """Server-Sent Events: ``fleet`` whenever what the pages show has changed."""
    return StreamingResponse(
        live.stream(request, runtime.sessions),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _safe_next(path: str) -> str:
    # only a path on this dashboard: never an open redirect to another site
    return path if path.startswith("/dashboard") and "//" not in path and "\\" not in path else "/dashboard"


async def _to_sign_in(request: Request, err: Exception) -> Response:
    assert isinstance(err, SignInNeeded)  # registered for SignInNeeded only
    target = f"/dashboard/login?next={quote(err.next_path)}"
    if err.expired:
        target += "&expired=true"
    return RedirectResponse(target, status_code=303)


def install(app: FastAPI) -> None:
    """Serve the dashboard from ``app``: its routes, its static files, and ``/`` leading to it."""
    app.include_router(router)
    app.mount("/dashboard/static", StaticFiles(directory=_HERE / "static"), name="dashboard-static")
    app.add_exception_handler(SignInNeeded, _to_sign_in)

    @app.get("/", include_in_schema=False)
    def _root() -> RedirectResponse:
        return RedirectResponse("/dashboard", status_code=307)

"""Every ``/api/v1`` route declares who may call it, and answers each role accordingly: walked with every role."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from fleet_server import MqttSettings, ServerHandle, ServerSettings, create_app
from fleet_server.api.deps import RoleRequirement
from fleet_server.auth import Role, grants
from tests.server.conftest import admin_headers
from tests.support import free_port

pytestmark = pytest.mark.integration

A, OP, V, D = Role.ADMIN, Role.OPERATOR, Role.VIEWER, Role.DEVICE
PEOPLE = frozenset({A, OP, V})
# the one route a caller reaches without a bearer token: a device enrolls with the provisioning token in the body
OPEN = frozenset({("POST", "/api/v1/devices/enroll")})
# who may call the routes this test knows; a route added later needs no entry here, but must declare a role
POLICY: dict[tuple[str, str], frozenset[Role]] = {
    ("GET", "/api/v1/devices"): PEOPLE,
    ("GET", "/api/v1/devices/{device_id}"): PEOPLE | {D},  # a device: its own record only
    ("PUT", "/api/v1/devices/{device_id}/tags"): frozenset({A, OP}),
    ("POST", "/api/v1/models"): frozenset({A, OP}),
    ("GET", "/api/v1/models"): PEOPLE,
    ("GET", "/api/v1/models/{name}/versions/{version}"): PEOPLE,
    ("GET", "/api/v1/packages/{sha256}"): PEOPLE | {D},
    ("HEAD", "/api/v1/packages/{sha256}"): PEOPLE | {D},
    ("POST", "/api/v1/provisioning-tokens"): frozenset({A, OP}),
    ("POST", "/api/v1/tokens"): frozenset({A}),
    ("GET", "/api/v1/tokens"): frozenset({A}),
    ("DELETE", "/api/v1/tokens/{token_id}"): frozenset({A}),
    ("GET", "/api/v1/whoami"): frozenset(Role),
    ("POST", "/api/v1/rollouts"): frozenset({A, OP}),
    ("GET", "/api/v1/rollouts"): PEOPLE,
    ("GET", "/api/v1/rollouts/{rollout_id}"): PEOPLE,
    ("POST", "/api/v1/rollouts/{rollout_id}/pause"): frozenset({A, OP}),
    ("POST", "/api/v1/rollouts/{rollout_id}/resume"): frozenset({A, OP}),
    ("POST", "/api/v1/rollouts/{rollout_id}/abort"): frozenset({A, OP}),
    ("GET", "/api/v1/cohorts"): PEOPLE,
    ("GET", "/api/v1/drift/devices/{device_id}"): PEOPLE,
    ("GET", "/api/v1/drift/devices/{device_id}/history"): PEOPLE,
    ("GET", "/api/v1/drift/cohorts"): PEOPLE,
    ("GET", "/api/v1/drift/history"): PEOPLE,
    ("GET", "/api/v1/drift/alarms"): PEOPLE,
    ("POST", "/api/v1/devices/{device_id}/samples:request"): frozenset({A, OP}),
    ("POST", "/api/v1/devices/{device_id}/samples"): frozenset({A, OP, D}),  # a device: its own id only
    ("GET", "/api/v1/devices/{device_id}/samples"): PEOPLE,
    ("GET", "/api/v1/devices/{device_id}/samples/{request_id}"): PEOPLE,
    ("GET", "/api/v1/keys"): PEOPLE,
    ("PUT", "/api/v1/keys"): frozenset({A}),
}
DEVICE_ID = "walker-1"
# path parameters filled so that a route lets the request through to its own checks (then 404 or 422 at most)
SAMPLES = {
    "device_id": DEVICE_ID,
    "sha256": "0" * 64,
    "name": "pump",
    "version": "1.0.0",
    "token_id": "0" * 12,
    "rollout_id": "r-none",
    "request_id": "r-none",
}


def _routes() -> list[tuple[str, str, Dependant]]:
    """Each API method and path with its dependencies, as mounted (include_router prefixes and dependencies)."""
    app = create_app(ServerSettings(data_dir=Path("unused")))  # only its route table: nothing starts
    routes: list[tuple[str, str, Dependant]] = []
    for context in iter_route_contexts(app.routes):
        path, methods = context.path or "", context.methods or set()
        if isinstance(context.original_route, APIRoute) and path.startswith("/api/v1/"):
            routes.extend((method, path, context.dependant) for method in methods)
    return sorted(routes, key=lambda row: row[:2])


ROUTES = _routes()


def _requirements(dependant: Dependant) -> Iterator[RoleRequirement]:
    for sub in dependant.dependencies:
        owner = getattr(sub.call, "__self__", None)
        if isinstance(owner, RoleRequirement):
            yield owner
        yield from _requirements(sub)


def _allowed(dependant: Dependant) -> frozenset[Role]:
    """The roles the route's declared requirements let through."""
    requirements = list(_requirements(dependant))
    return frozenset(role for role in Role if all(any(grants(role, r) for r in req.roles) for req in requirements))


def test_every_api_route_but_enrollment_declares_a_role() -> None:
    undeclared = [
        f"{method} {path}"
        for method, path, dependant in ROUTES
        if (method, path) not in OPEN and not list(_requirements(dependant))
    ]
    assert not undeclared, (
        f"routes without a role: {undeclared} (add dependencies=[Depends(require(Role.VIEWER))] or the role "
        "they need, from fleet_server.api.deps, to the decorator or the router)"
    )


def test_the_known_routes_declare_the_roles_of_the_policy() -> None:
    declared = {(method, path): _allowed(dependant) for method, path, dependant in ROUTES if (method, path) in POLICY}
    assert declared == POLICY


@dataclass(frozen=True, slots=True)
class Walk:
    server: ServerHandle
    headers: dict[Role | None, dict[str, str]]


@pytest.fixture(scope="module")
def walk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Walk]:
    """One server for the whole walk, with a token of every role (the device's from a real enrollment)."""
    settings = ServerSettings(
        data_dir=tmp_path_factory.mktemp("walk") / "server", http_port=free_port(), mqtt=MqttSettings(port=free_port())
    )
    server = ServerHandle(settings)
    server.start()
    try:
        with httpx.Client(base_url=server.base_url, headers=admin_headers(server)) as admin:
            headers: dict[Role | None, dict[str, str]] = {None: {}, A: admin_headers(server)}
            for role in (OP, V):
                created = admin.post("/api/v1/tokens", json={"name": f"walk {role}", "role": role})
                headers[role] = {"Authorization": f"Bearer {created.json()['token']}"}
            provisioning = admin.post("/api/v1/provisioning-tokens", json={"uses": 1}).json()
            enrolled = httpx.post(
                f"{server.base_url}/api/v1/devices/enroll",
                json={"provisioning_token": provisioning["token"], "device_id": DEVICE_ID, "profile": "rpi4"},
            )
            headers[D] = {"Authorization": f"Bearer {enrolled.json()['token']}"}
        yield Walk(server, headers)
    finally:
        server.stop()


def _call(walk: Walk, method: str, path: str, role: Role | None) -> httpx.Response:
    url = walk.server.base_url + re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: SAMPLES.get(m.group(1), "x"), path)
    # an empty JSON object: enough to pass the role check, then refused by validation (422) or the route itself
    body: dict[str, object] | None = {} if method in {"POST", "PUT", "PATCH"} else None
    return httpx.request(method, url, json=body, headers=walk.headers[role])


@pytest.mark.parametrize(("method", "path", "dependant"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
def test_each_role_is_let_through_or_refused_as_the_route_declares(
    walk: Walk, method: str, path: str, dependant: Dependant
) -> None:
    is_open = (method, path) in OPEN
    allowed = frozenset(Role) if is_open else _allowed(dependant)
    answers = {role: _call(walk, method, path, role) for role in (None, V, OP, A, D)}
    codes = {str(role): response.status_code for role, response in answers.items()}
    if not is_open:
        assert answers[None].status_code == 401, codes
        assert answers[None].headers["www-authenticate"].startswith("Bearer"), codes
    for role in Role:
        if role in allowed:
            assert answers[role].status_code not in {401, 403}, (role, codes)
        else:
            assert answers[role].status_code == 403, (role, codes)


def test_a_refusal_names_the_role_needed_and_the_role_held(walk: Walk) -> None:
    response = httpx.post(f"{walk.server.base_url}/api/v1/tokens", json={}, headers=walk.headers[OP])
    assert response.status_code == 403
    assert "needs the admin role" in response.json()["detail"]
    assert "is a operator token" in response.json()["detail"]


def test_a_device_reads_its_own_record_and_no_other(walk: Walk) -> None:
    own = httpx.get(f"{walk.server.base_url}/api/v1/devices/{DEVICE_ID}", headers=walk.headers[D])
    assert own.status_code == 200
    assert own.json()["id"] == DEVICE_ID
    other = httpx.get(f"{walk.server.base_url}/api/v1/devices/someone-else", headers=walk.headers[D])
    assert other.status_code == 403
    assert "only its own device" in other.json()["detail"]


def test_a_bad_bearer_is_a_401_that_says_invalid_token(walk: Walk) -> None:
    for bearer in ("nonsense", "eft_000000000000_" + "a" * 43):
        response = httpx.get(f"{walk.server.base_url}/api/v1/whoami", headers={"Authorization": f"Bearer {bearer}"})
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'

"""Rate limits: enrollment per address and per provisioning token, failed dashboard sign-ins, refused bearer tokens,
each a 429 with Retry-After; valid credentials are never charged, however many requests they send."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fleet_server import MqttSettings, ServerHandle, ServerSettings
from fleet_server.api.ratelimit import RateLimiter
from fleet_server.auth import read_token_file
from fleet_server.settings import RateLimitSettings
from tests.support import free_port

pytestmark = pytest.mark.integration

BURST = 4
# refills so slowly that no try comes back within a test, so the counts below are exact
LIMITS = RateLimitSettings(
    enroll_burst=BURST,
    enroll_per_s=0.001,
    enroll_token_failures_burst=BURST,
    enroll_token_failures_per_s=0.001,
    signin_failures_burst=BURST,
    signin_failures_per_s=0.001,
    auth_failures_burst=BURST,
    auth_failures_per_s=0.001,
)


def test_a_bucket_refills_at_its_rate_and_says_how_long_to_wait() -> None:
    now = [0.0]
    limiter = RateLimiter(burst=2, per_s=0.5, clock=lambda: now[0])
    assert [limiter.take("a"), limiter.take("a")] == [0.0, 0.0]
    assert limiter.take("a") == pytest.approx(2.0)
    assert limiter.take("b") == 0.0  # keys do not share a bucket
    now[0] = 1.0
    assert limiter.wait_s("a") == pytest.approx(1.0)
    now[0] = 2.0
    assert limiter.take("a") == 0.0
    now[0] = 1000.0
    assert [limiter.take("a"), limiter.take("a"), limiter.take("a") > 0] == [0.0, 0.0, True]  # never above burst


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerHandle]:
    settings = ServerSettings(
        data_dir=tmp_path / "server", http_port=free_port(), mqtt=MqttSettings(port=free_port()), rate_limits=LIMITS
    )
    handle = ServerHandle(settings)
    handle.start()
    yield handle
    handle.stop()


@pytest.fixture
def admin(server: ServerHandle) -> Iterator[httpx.Client]:
    token = read_token_file(server.settings.resolved_admin_token_file())
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10) as client:
        yield client


def _limited(response: httpx.Response) -> bool:
    return response.status_code == 429 and int(response.headers["retry-after"]) >= 1


def test_valid_tokens_are_never_limited(admin: httpx.Client) -> None:
    assert {admin.get("/api/v1/devices").status_code for _ in range(10 * BURST)} == {200}
    bad = {"Authorization": "Bearer eft_000000000000_" + "a" * 43}
    assert [admin.get("/api/v1/whoami", headers=bad).status_code for _ in range(BURST - 1)] == [401] * (BURST - 1)
    # refusals below the burst cost the address nothing it needs
    assert admin.get("/api/v1/whoami").status_code == 200


def test_refused_bearer_tokens_are_limited_per_address(admin: httpx.Client) -> None:
    bad = {"Authorization": "Bearer eft_000000000000_" + "a" * 43}
    assert [admin.get("/api/v1/whoami", headers=bad).status_code for _ in range(BURST)] == [401] * BURST
    assert _limited(admin.get("/api/v1/whoami", headers=bad))
    # the address is held off, whatever it sends next: a guesser cannot tell a hit from a miss
    assert _limited(admin.get("/api/v1/whoami"))


def test_enrollment_is_limited_per_address(admin: httpx.Client) -> None:
    token = admin.post("/api/v1/provisioning-tokens", json={"uses": 100}).json()["token"]
    answers = [
        admin.post("/api/v1/devices/enroll", json={"provisioning_token": token, "device_id": f"rl-{i}"})
        for i in range(BURST + 1)
    ]
    assert [a.status_code for a in answers[:BURST]] == [201] * BURST
    assert _limited(answers[BURST])


def test_refused_enrollments_are_limited_per_provisioning_token(tmp_path: Path) -> None:
    limits = LIMITS.model_copy(update={"enroll_burst": 100, "enroll_token_failures_burst": 2})
    settings = ServerSettings(
        data_dir=tmp_path / "server", http_port=free_port(), mqtt=MqttSettings(port=free_port()), rate_limits=limits
    )
    server = ServerHandle(settings)
    server.start()
    try:
        admin = {"Authorization": f"Bearer {read_token_file(settings.resolved_admin_token_file())}"}
        with httpx.Client(base_url=server.base_url, headers=admin, timeout=10) as http:
            real = http.post("/api/v1/provisioning-tokens", json={"uses": 2}).json()
            other = http.post("/api/v1/provisioning-tokens", json={"uses": 1}).json()
            guess = real["token"][:-4] + "AAAA"  # the right id, a wrong secret

            def enroll(token: str, device_id: str) -> httpx.Response:
                return http.post("/api/v1/devices/enroll", json={"provisioning_token": token, "device_id": device_id})

            assert [enroll(guess, "g").status_code for _ in range(2)] == [401, 401]
            held_off = enroll(guess, "g")
            assert _limited(held_off)
            assert real["id"] in held_off.json()["detail"]
            assert _limited(enroll(real["token"], "d-1"))  # the guessed token rests until its bucket refills
            assert enroll(other["token"], "d-2").status_code == 201  # every other token works
    finally:
        server.stop()


def test_failed_dashboard_sign_ins_are_limited(server: ServerHandle, admin: httpx.Client) -> None:
    viewer = admin.post("/api/v1/tokens", json={"name": "v", "role": "viewer"}).json()["token"]
    with httpx.Client(base_url=server.base_url) as browser:
        assert browser.post("/dashboard/login", data={"token": viewer}).status_code == 303
        wrong = [browser.post("/dashboard/login", data={"token": "eft_000000000000_" + "b" * 43}) for _ in range(BURST)]
        assert [w.status_code for w in wrong] == [401] * BURST
        assert _limited(browser.post("/dashboard/login", data={"token": "eft_000000000000_" + "b" * 43}))
        assert _limited(browser.post("/dashboard/login", data={"token": viewer}))

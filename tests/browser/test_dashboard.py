"""The dashboard in Debian's Chromium against a running server with real agents: every page loads cleanly and talks
only to the server, charts draw data, pages update live, an operator pauses a rollout and a viewer cannot."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from fleet_server import MqttSettings, ServerHandle, ServerSettings
from fleet_server.auth import read_token_file
from tests.browser.conftest import DESKTOP, PHONE, Stack
from tests.support import free_port, wait_until

pytestmark = pytest.mark.browser

ZONE = "Asia/Tokyo"  # not the machine's zone: times on the page must follow the browser's


@dataclass
class Visit:
    page: Any
    base_url: str
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def goto(self, path: str) -> None:
        response = self.page.goto(self.base_url + path)
        assert response is not None
        assert response.status == 200, (path, response.status)


@contextlib.contextmanager
def signed_in(browser: Any, base_url: str, token: str, viewport: dict[str, int] = DESKTOP) -> Iterator[Visit]:
    """A fresh browser context signed in through the login form with ``token``."""
    context = browser.new_context(viewport=viewport, timezone_id=ZONE, locale="en-GB")
    try:
        page = context.new_page()
        visit = Visit(page, base_url)
        page.on("console", lambda m: visit.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda err: visit.errors.append(str(err)))
        page.on("request", lambda r: visit.requests.append(r.url))
        page.goto(base_url + "/dashboard")
        assert "/dashboard/login" in page.url
        page.fill("#token", token)
        page.click("button[type=submit]")
        page.wait_for_url(re.compile(r".*/dashboard$"))
        yield visit
    finally:
        context.close()


def _pages(stack: Stack) -> dict[str, str]:
    return {
        "overview": "/dashboard",
        "device": f"/dashboard/devices/{stack.device_ids[0]}",
        "models": "/dashboard/models",
        "rollouts": "/dashboard/rollouts",
    }


def test_every_page_loads_cleanly_from_the_server_alone_at_desktop_and_phone_width(
    stack: Stack, browser: Any, screenshots: Path
) -> None:
    for label, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        with signed_in(browser, stack.base_url, stack.tokens["admin"], viewport) as visit:
            for name, path in _pages(stack).items():
                visit.goto(path)
                visit.page.wait_for_selector("#live[data-state=live]", timeout=10_000)
                if name == "device":
                    visit.page.wait_for_selector("#chart-latency canvas", timeout=10_000)
                visit.page.screenshot(path=str(screenshots / f"{name}-{label}.png"), full_page=True)
            assert visit.errors == []
            foreign = [url for url in visit.requests if not url.startswith(stack.base_url + "/")]
            assert foreign == []
            assert any(url.endswith("/dashboard/events") for url in visit.requests)
            assert any("/static/vendor/uPlot" in url for url in visit.requests)


def test_the_overview_shows_the_fleet_and_times_in_the_viewers_zone(stack: Stack, browser: Any) -> None:
    with signed_in(browser, stack.base_url, stack.tokens["viewer"]) as visit:
        page = visit.page
        assert page.inner_text("[data-stat=online]") == str(len(stack.device_ids))
        assert page.locator("#devices tbody tr").count() == len(stack.device_ids)
        assert "jetson-orin-nano" in page.inner_text(".bars")
        assert "2.0.0" in page.inner_text("#cohorts")  # the canary's cohort
        stamp = page.locator("#devices time").first
        iso = stamp.get_attribute("datetime")
        local = datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(ZoneInfo(ZONE))
        assert f"{local:%H:%M}" in stamp.inner_text()
        assert iso not in stamp.inner_text()
        # sortable: by device id descending, then ascending
        header = page.locator("#devices th", has_text="Device")
        header.click()
        header.click()
        ids = page.locator("#devices tbody tr td:first-child").all_inner_texts()
        assert ids == sorted(stack.device_ids, reverse=True)
        assert visit.errors == []


def test_charts_draw_the_devices_telemetry_and_drift(stack: Stack, browser: Any) -> None:
    with signed_in(browser, stack.base_url, stack.tokens["viewer"]) as visit:
        visit.goto(f"/dashboard/devices/{stack.device_ids[0]}")
        page = visit.page
        for chart in ("#chart-latency", "#chart-throughput"):
            canvas = page.wait_for_selector(f"{chart} canvas", timeout=10_000)
            box = canvas.bounding_box()
            assert box is not None
            assert box["width"] > 200
            assert box["height"] > 100
            assert int(page.get_attribute(chart, "data-points") or 0) > 0
        drift = page.wait_for_selector(".drift-feature canvas", timeout=15_000)
        box = drift.bounding_box()
        assert box is not None
        assert box["width"] > 100
        assert int(page.get_attribute("[data-drift-src]", "data-features") or 0) > 0
        assert page.locator("#drift-empty").is_hidden()
        assert page.locator(".timeline li").count() >= 1
        assert visit.errors == []


def test_pages_update_live_without_a_reload(stack: Stack, browser: Any) -> None:
    with signed_in(browser, stack.base_url, stack.tokens["viewer"]) as visit:
        page = visit.page
        page.evaluate("window.__same_page = true")

        # the page's CSP forbids eval, so Playwright's wait_for_function cannot run there: poll from here
        def inferences() -> int:
            return int(page.locator("#devices tbody tr td:nth-child(7)").first.get_attribute("data-sort") or 0)

        before = inferences()
        wait_until(lambda: inferences() > before, timeout_s=15)
        assert page.evaluate("window.__same_page") is True
        assert visit.errors == []


def test_an_operator_pauses_the_rollout_from_the_page_and_a_viewer_cannot(stack: Stack, browser: Any) -> None:
    assert stack.rollout()["state"] == "running"
    with signed_in(browser, stack.base_url, stack.tokens["viewer"]) as viewer:
        viewer.goto("/dashboard/rollouts")
        card = viewer.page.locator(f"section.rollout[id='{stack.rollout_id}']")
        assert "wave 1" in card.inner_text()
        assert card.locator("table.gates tbody tr").count() >= 2
        assert viewer.page.locator("[data-action]").count() == 0
        csrf = viewer.page.get_attribute("input[name=csrf]", "value")  # the sign-out form's
        forged = viewer.page.request.post(
            f"{stack.base_url}/dashboard/rollouts/{stack.rollout_id}/pause",
            form={"csrf": csrf or "", "reason": "forged"},
            max_redirects=0,
        )
        assert forged.status == 403
        assert stack.rollout()["state"] == "running"
    with signed_in(browser, stack.base_url, stack.tokens["operator"]) as operator:
        operator.goto("/dashboard/rollouts")
        page = operator.page
        no_csrf = page.request.post(
            f"{stack.base_url}/dashboard/rollouts/{stack.rollout_id}/pause", form={"reason": "x"}, max_redirects=0
        )
        assert no_csrf.status == 403
        page.click(f"section.rollout[id='{stack.rollout_id}'] [data-action=pause]")
        page.wait_for_selector(f"section.rollout[id='{stack.rollout_id}'][data-state=paused]", timeout=10_000)
        assert page.locator(f"section.rollout[id='{stack.rollout_id}'] [data-action=resume]").count() == 1
        assert operator.errors == []
    paused = stack.rollout()
    assert paused["state"] == "paused"
    assert paused["audit"][-1]["actor"] == "dana the operator"


def test_sign_in_is_by_token_into_a_strict_http_only_cookie(stack: Stack) -> None:
    with httpx.Client(base_url=stack.base_url, timeout=10) as http:
        assert http.get("/dashboard").headers["location"].startswith("/dashboard/login")
        assert http.get("/dashboard/events").status_code == 401
        refused = http.post("/dashboard/login", data={"token": "eft_000000000000_" + "x" * 43})
        assert refused.status_code == 401
        foreign = http.post(
            "/dashboard/login", data={"token": stack.tokens["viewer"]}, headers={"Origin": "https://evil.example"}
        )
        assert foreign.status_code == 403
        signed = http.post("/dashboard/login", data={"token": stack.tokens["viewer"]})
        assert signed.status_code == 303
        cookie = signed.headers["set-cookie"].lower()
        assert "httponly" in cookie
        assert "samesite=strict" in cookie
        assert "content-security-policy" in http.get("/dashboard").headers


def test_an_empty_server_tells_a_new_user_what_to_do(tmp_path: Path, browser: Any, screenshots: Path) -> None:
    settings = ServerSettings(data_dir=tmp_path / "server", http_port=free_port(), mqtt=MqttSettings(port=free_port()))
    server = ServerHandle(settings)
    server.start()
    try:
        admin = read_token_file(settings.resolved_admin_token_file())
        with signed_in(browser, server.base_url, admin) as visit:
            assert "edgefleet fleet emulate --devices 5" in visit.page.inner_text("#empty-fleet")
            visit.page.screenshot(path=str(screenshots / "overview-empty-desktop.png"), full_page=True)
            visit.goto("/dashboard/models")
            assert "edgefleet package build" in visit.page.inner_text("#empty-models")
            visit.goto("/dashboard/rollouts")
            assert "edgefleet rollout create" in visit.page.inner_text("#empty-rollouts")
            assert visit.errors == []
    finally:
        server.stop()

"""Update faults on emulated devices, against a real Mosquitto and a real HTTP package server: a download that is
cut mid-file resumes, a slow one completes, and a device killed in the middle of an update comes back on a
verified model."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from devices import Fleet
from edge_agent.settings import UpdateSettings
from edgefleet.messages import EventV1, StatusV1
from tests.agent.conftest import Subscriber, TinyPackage
from tests.agent.tiny import build_tiny_package
from tests.agent.update_support import FINAL, Commander, events, files
from tests.support import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def v2(tiny_package: TinyPackage, tmp_path_factory: pytest.TempPathFactory) -> TinyPackage:
    # about 350 kB: many of the cut fault's 64 kB pieces
    return build_tiny_package(
        tmp_path_factory.mktemp("v2"), version="2.0.0", seed=2, keys=tiny_package.public_key.parent, pad_floats=40_000
    )


def outcome(subscriber: Subscriber, rollout: str, timeout_s: float) -> EventV1:
    """The event that ends ``rollout`` on emu-001: committed, rolled back or failed."""

    def final() -> EventV1 | None:
        done = [e for e in events(subscriber, "emu-001") if e.rollout_id == rollout and e.kind in FINAL]
        return done[-1] if done else None

    found = wait_until(final, timeout_s=timeout_s)
    assert found is not None
    return found


def kinds(subscriber: Subscriber, rollout: str) -> list[str]:
    return [e.kind.value for e in events(subscriber, "emu-001") if e.rollout_id == rollout]


def _fleet(tiny: TinyPackage, tmp_path: Path, port: int, injection: str, **changes: Any) -> Fleet:
    return Fleet(
        1,
        tiny.path,
        [tiny.public_key],
        "127.0.0.1",
        port,
        tmp_path / "fleet",
        telemetry_interval_s=0.3,
        windows_per_s=50,
        profiles=("x86-gateway",),
        injections=(injection,),
        updates=UpdateSettings(health_window_s=0.5, health_min_inferences=5, max_latency_ratio=50),
        **changes,
    )


def test_a_download_cut_mid_file_resumes_and_commits(
    tiny_package: TinyPackage, v2: TinyPackage, tmp_path: Path, mqtt_broker: int
) -> None:
    events = Subscriber(mqtt_broker, "ef/v1/emu-001/events")
    fleet = _fleet(tiny_package, tmp_path, mqtt_broker, "cut-download")
    with files(v2.path.read_bytes()) as server:
        fleet.start()
        try:
            Commander(mqtt_broker, device_id="emu-001").assign(v2.path, server.url, rollout="r-cut", deadline_s=120)
            final = outcome(events, "r-cut", timeout_s=90)
            route = fleet.routes["emu-001"]
            proxy = next(iter(route.proxies.values()))
        finally:
            fleet.stop()
            events.close()
        assert final.kind == "committed", final.detail
        # three cuts, each followed by a request for the rest only
        assert proxy.dropped == 3
        ranges = [seen.range for seen in server.seen]
        assert ranges[0] is None
        assert all(r is not None and r.startswith("bytes=") and not r.startswith("bytes=0-") for r in ranges[1:4]), (
            ranges
        )


def test_a_slow_download_completes(
    tiny_package: TinyPackage, v2: TinyPackage, tmp_path: Path, mqtt_broker: int
) -> None:
    events = Subscriber(mqtt_broker, "ef/v1/emu-001/events")
    fleet = _fleet(tiny_package, tmp_path, mqtt_broker, "slow-download")
    with files(v2.path.read_bytes()) as server:
        fleet.start()
        try:
            started = time.monotonic()
            Commander(mqtt_broker, device_id="emu-001").assign(v2.path, server.url, rollout="r-slow", deadline_s=120)
            final = outcome(events, "r-slow", timeout_s=90)
            took_s = time.monotonic() - started
        finally:
            fleet.stop()
            events.close()
    assert final.kind == "committed", final.detail
    # 50 kB/s on the device's link
    assert took_s >= 0.8 * v2.path.stat().st_size / 50_000


def test_a_device_killed_mid_update_comes_back_on_a_verified_model(
    tiny_package: TinyPackage, v2: TinyPackage, tmp_path: Path, mqtt_broker: int
) -> None:
    watcher = Subscriber(mqtt_broker, "ef/v1/emu-001/#")
    fleet = _fleet(tiny_package, tmp_path, mqtt_broker, "crash-mid-update", crash_at="staged")
    with files(v2.path.read_bytes()) as server:
        fleet.start()
        try:
            process = fleet.processes["emu-001"]
            wait_until(lambda: watcher.on("ef/v1/emu-001/status"), timeout_s=60)
            Commander(mqtt_broker, device_id="emu-001").assign(v2.path, server.url, rollout="r-crash", deadline_s=120)
            wait_until(lambda: process.restarts == 1, timeout_s=60)
            final = outcome(watcher, "r-crash", timeout_s=90)

            def online_model() -> str | None:
                statuses = [StatusV1.model_validate_json(p) for p, _ in watcher.on("ef/v1/emu-001/status")]
                last = statuses[-1]
                return last.model.version if last.state == "online" and last.model is not None else None

            version = wait_until(online_model, timeout_s=30)
        finally:
            fleet.stop()
            watcher.close()
    # killed after staging: the restarted agent finishes the update from its journal, or rolls it back
    assert "staged" in kinds(watcher, "r-crash")
    assert final.kind in {"committed", "rolled-back"}, final.detail
    assert version == ("2.0.0" if final.kind == "committed" else "1.0.0")

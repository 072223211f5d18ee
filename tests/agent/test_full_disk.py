"""A full disk under the agent: it keeps serving and reporting, and tells the fleet it lost store-and-forward."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_agent import Agent, SimulatedSourceSettings
from edge_agent.settings import UpdateSettings
from edgefleet.messages import EventKind, EventV1, TelemetryV1
from edgefleet.topics import TopicKind, topic
from tests.agent.conftest import TinyPackage, agent_settings
from tests.agent.tiny import build_tiny_package
from tests.agent.update_support import Commander, files, outcome, pointer, running, serving
from tests.support import fill, small_disk_at

pytestmark = pytest.mark.integration


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 2 MiB filesystem, unmounted afterwards."""
    with small_disk_at(tmp_path / "disk") as mount:
        yield mount


def test_a_full_disk_is_reported_and_the_agent_keeps_serving(
    tiny_package: TinyPackage, small_disk: Path, mqtt_broker: int, subscribe: Any
) -> None:
    telemetry = subscribe("ef/v1/dev-1/telemetry")
    events = subscribe("ef/v1/dev-1/events")
    settings = agent_settings(
        tiny_package, small_disk / "agent", mqtt_broker, source=SimulatedSourceSettings(windows_per_s=400)
    )
    agent = Agent(settings)
    agent.start()
    fill(small_disk)
    assert shutil.disk_usage(small_disk).free == 0
    served = agent.run(max_windows=120)
    agent.close()
    assert served == 120
    reported = [TelemetryV1.model_validate_json(p) for p, _ in telemetry.wait_for("ef/v1/dev-1/telemetry")]
    # every inference is reported even though nothing more could be written to disk
    assert sum(t.inference_count for t in reported) == 120
    details = [EventV1.model_validate_json(p) for p, _ in events.wait_for("ef/v1/dev-1/events", 2)]
    assert any(e.kind == EventKind.ERROR and "full or unwritable" in e.detail for e in details), details


def test_an_update_that_does_not_fit_fails_cleanly_and_the_running_model_stays(
    tiny_package: TinyPackage, small_disk: Path, tmp_path: Path, mqtt_broker: int, subscribe: Any
) -> None:
    big = build_tiny_package(tmp_path / "v2", version="2.0.0", keys=tiny_package.public_key.parent, pad_floats=150_000)
    events = subscribe(topic("dev-1", TopicKind.EVENTS))
    settings = agent_settings(
        tiny_package,
        small_disk / "agent",
        mqtt_broker,
        source=SimulatedSourceSettings(windows_per_s=100),
        updates=UpdateSettings(health_window_s=0.5, health_min_inferences=5),
    )
    with files(big.path.read_bytes()) as server, serving(settings) as agent:
        fill(small_disk, leave_bytes=big.path.stat().st_size // 2)
        Commander(mqtt_broker).assign(big.path, server.url, rollout="r-full")
        final = outcome(events, "r-full")
        assert (final.kind, final.reason) == ("failed", "disk-full"), final.detail
        time.sleep(0.3)
        assert running(agent) == ("1.0.0", "a")
        served = agent.vitals.p95_ms()
        assert served is not None  # still answering
    assert pointer(small_disk / "agent")["active"] == "a"
    downloads = small_disk / "agent" / "downloads"
    assert not downloads.is_dir() or not list(downloads.iterdir())
    assert not (small_disk / "agent" / "slots" / "b").exists()

"""A full disk under the agent: it keeps serving and reporting, and tells the fleet it lost store-and-forward."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_agent import Agent, SimulatedSourceSettings
from edgefleet.messages import EventKind, EventV1, TelemetryV1
from tests.agent.conftest import TinyPackage, agent_settings

pytestmark = pytest.mark.integration


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 2 MiB filesystem (tmpfs; the suite runs as root, as CI does), unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def _fill(disk: Path) -> None:
    # dd stops at "No space left on device"
    subprocess.run(["dd", "if=/dev/zero", f"of={disk / 'filler'}", "bs=4k"], capture_output=True, check=False)
    assert shutil.disk_usage(disk).free == 0


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
    _fill(small_disk)
    served = agent.run(max_windows=120)
    agent.close()
    assert served == 120
    reported = [TelemetryV1.model_validate_json(p) for p, _ in telemetry.wait_for("ef/v1/dev-1/telemetry")]
    # every inference is reported even though nothing more could be written to disk
    assert sum(t.inference_count for t in reported) == 120
    details = [EventV1.model_validate_json(p) for p, _ in events.wait_for("ef/v1/dev-1/events", 2)]
    assert any(e.kind == EventKind.ERROR and "full or unwritable" in e.detail for e in details), details

"""The whole scenario, as `make demo DEMO_ARGS=--once` runs it, and the agent's own command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edgefleet.messages import StatusV1, TelemetryV1, parse_message
from tests.conftest import Pipeline, Recorder
from tests.support import free_port

pytestmark = pytest.mark.e2e


def test_demo_once_plays_the_whole_scenario_and_exits_0(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable, "-m", "edgefleet", "demo", "--once", "--out", str(tmp_path / "demo"),
            "--http-port", str(free_port()), "--mqtt-port", str(free_port()),
        ],
        capture_output=True, text=True, timeout=600, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    steps = (
        "keys",
        "train",
        "export",
        "package",
        "server",
        "devices",
        "rollout v1",
        "rollout v2",
        "drift",
        "rollout v3",
    )
    for step in steps:
        assert f"✓ {step}" in result.stderr
    # the summary names every expected outcome, each seen
    for outcome in (
        "v1 on every pump",
        "v2 in waves, canary first",
        "drift alarm on line 2",
        "bad v3 stopped and rolled back",
    ):
        assert outcome in result.stdout
    assert "✗" not in result.stdout
    assert "/dashboard" in result.stdout


def test_agent_command_runs_from_a_toml_file(pipeline: Pipeline, tmp_path: Path, broker: int) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(
        f'device_id = "cli-dev"\ndata_dir = "{tmp_path / "data"}"\npackage = "{pipeline.package}"\n'
        f'trusted_keys = ["{pipeline.public_key}"]\n[broker]\nport = {broker}\n[source]\nwindows_per_s = 0\n'
    )
    recorder = Recorder(broker, "ef/v1/cli-dev/#")
    result = subprocess.run(
        [Path(sys.executable).parent / "edgefleet-agent", "run", "--config", config, "--once", "25"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "stopped after 25 windows" in result.stderr
    statuses = [parse_message(p) for p in recorder.payloads_when("ef/v1/cli-dev/status", 2)]
    assert [s.state for s in statuses if isinstance(s, StatusV1)] == ["online", "offline"]
    telemetry = [parse_message(p) for p in recorder.payloads("ef/v1/cli-dev/telemetry")]
    assert sum(t.inference_count for t in telemetry if isinstance(t, TelemetryV1)) == 25
    recorder.close()


def test_agent_command_refuses_a_bad_config_without_a_traceback(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text('device_id = "Bad/Id"\n')
    result = subprocess.run(
        [Path(sys.executable).parent / "edgefleet-agent", "run", "--config", config],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "device_id" in result.stderr
    assert "Traceback" not in result.stderr

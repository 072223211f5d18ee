"""The real agent against a real broker: retained status with a last will, telemetry per interval, offline at the end."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from edge_agent import Agent, AgentSettings, SimulatedSourceSettings
from edgefleet.messages import EventKind, EventV1, StatusV1, TelemetryV1
from edgefleet.sensor_sim import FAULTS
from tests.agent.conftest import CONFIDENCE_EDGES, TinyPackage, agent_settings
from tests.support import wait_until

pytestmark = pytest.mark.integration

STATUS, TELEMETRY, EVENTS = "ef/v1/dev-1/status", "ef/v1/dev-1/telemetry", "ef/v1/dev-1/events"


def _settings(tiny: TinyPackage, tmp_path: Path, port: int, **changes: object) -> AgentSettings:
    return agent_settings(tiny, tmp_path / "agent", port, **changes)


def test_reports_status_telemetry_and_goes_offline(
    tiny_package: TinyPackage, tmp_path: Path, mqtt_broker: int, subscribe: Any
) -> None:
    events = subscribe(EVENTS)
    agent = Agent(_settings(tiny_package, tmp_path, mqtt_broker))
    agent.start()
    # a subscriber that comes later still learns the device is online: the status is retained
    late = subscribe("ef/v1/dev-1/#")
    payload, retained = late.wait_for(STATUS)[0]
    online = StatusV1.model_validate_json(payload)
    assert (online.state, retained, online.profile) == ("online", True, "rpi4b")
    assert online.model is not None
    assert online.model.artifact == "model-int8.onnx"
    served = agent.run(max_windows=40)
    agent.close()

    offline = StatusV1.model_validate_json(late.wait_for(STATUS, 2)[-1][0])
    assert offline.state == "offline"
    assert offline.seq > online.seq
    telemetry = [TelemetryV1.model_validate_json(p) for p, _ in late.wait_for(TELEMETRY)]
    assert sum(t.inference_count for t in telemetry) == served == 40
    assert [t.seq for t in telemetry] == list(range(len(telemetry)))
    for message in telemetry:
        assert len(message.class_counts) == len(FAULTS)
        assert sum(message.class_counts) == message.inference_count
        assert len(message.confidence_counts) == len(CONFIDENCE_EDGES) - 1
        assert all(sum(counts) == message.inference_count for counts in message.sketches.values())
        assert message.system is not None
        assert message.system.rss_bytes > 0
    assert any(t.inference_count > 0 and t.latency is not None for t in telemetry)
    assert EventV1.model_validate_json(events.wait_for(EVENTS)[0][0]).kind is EventKind.ACTIVE


def test_runs_until_stop_from_another_thread(
    tiny_package: TinyPackage, tmp_path: Path, mqtt_broker: int, subscribe: Any
) -> None:
    watcher = subscribe("ef/v1/dev-1/#")
    agent = Agent(_settings(tiny_package, tmp_path, mqtt_broker, source=SimulatedSourceSettings(windows_per_s=200)))
    agent.start()
    served: list[int] = []
    thread = threading.Thread(target=lambda: served.append(agent.run()), name="test-agent")
    thread.start()
    wait_until(lambda: any(TelemetryV1.model_validate_json(p).inference_count > 0 for p, _ in watcher.on(TELEMETRY)))
    agent.stop()
    thread.join(5)
    assert not thread.is_alive()
    agent.close()
    assert served[0] > 0
    assert StatusV1.model_validate_json(watcher.wait_for(STATUS, 2)[-1][0]).state == "offline"
    assert sum(TelemetryV1.model_validate_json(p).inference_count for p, _ in watcher.on(TELEMETRY)) == served[0]


def test_a_restarted_agent_continues_its_sequence(
    tiny_package: TinyPackage, tmp_path: Path, mqtt_broker: int, subscribe: Any
) -> None:
    watcher = subscribe(TELEMETRY)
    for _ in range(2):
        agent = Agent(_settings(tiny_package, tmp_path, mqtt_broker, telemetry_interval_s=100))
        agent.start()
        agent.run(max_windows=3)
        agent.close()
    assert [TelemetryV1.model_validate_json(p).seq for p, _ in watcher.wait_for(TELEMETRY, 2)] == [0, 1]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).parent / "edgefleet-agent"
    return subprocess.run([script, *args], capture_output=True, text=True, timeout=120)


def test_the_command_line_serves_windows_and_reports(
    tiny_package: TinyPackage, tmp_path: Path, mqtt_broker: int, subscribe: Any
) -> None:
    watcher = subscribe("ef/v1/cli-1/#")
    config = tmp_path / "agent.toml"
    config.write_text(
        f'device_id = "cli-1"\ndata_dir = "{tmp_path / "agent"}"\npackage = "{tiny_package.path}"\n'
        f'trusted_keys = ["{tiny_package.public_key}"]\n[broker]\nport = {mqtt_broker}\n[source]\nwindows_per_s = 0\n'
    )
    done = _cli("run", "--config", str(config), "--once", "25")
    assert done.returncode == 0, done.stderr
    assert "stopped after 25 windows" in done.stderr
    states = [StatusV1.model_validate_json(p).state for p, _ in watcher.wait_for("ef/v1/cli-1/status", 2)]
    assert states == ["online", "offline"]
    telemetry = watcher.wait_for("ef/v1/cli-1/telemetry")
    assert sum(TelemetryV1.model_validate_json(p).inference_count for p, _ in telemetry) == 25


def test_the_command_line_turns_bad_settings_into_a_hint_and_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text('device_id = "Pump/7"\n')
    done = _cli("run", "--config", str(config))
    assert done.returncode == 2
    assert "error:" in done.stderr
    assert "hint:" in done.stderr
    assert "Traceback" not in done.stderr

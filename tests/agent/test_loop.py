"""The inference loop: a bounded queue with counted drops, batches where the model allows, refusals as events."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from edge_agent import Agent, AgentSettings, SimulatedSourceSettings
from edge_agent.backends import Backend, choose_artifact
from edge_agent.feeder import Feeder
from edgefleet.errors import AgentError
from edgefleet.manifest import ArtifactFormat, Precision
from edgefleet.messages import EventKind, EventV1, TelemetryV1
from edgefleet.sensor_sim import CHANNELS, WINDOW_LENGTH
from tests.agent.conftest import TinyPackage, agent_settings
from tests.factories import make_manifest
from tests.support import wait_until

pytestmark = pytest.mark.integration


class _Counted:
    """A source of ``total`` windows as fast as it can go, counting what it produced."""

    dropped = 0

    def __init__(self, total: int) -> None:
        self.total = total
        self.produced = 0

    def __iter__(self) -> Iterator[npt.NDArray[np.float32]]:
        rng = np.random.default_rng(0)
        for _ in range(self.total):
            self.produced += 1
            yield rng.normal(size=(len(CHANNELS), WINDOW_LENGTH)).astype(np.float32)


class _Slow:
    """The real backend, slower by ``delay_s`` per run, recording each batch size."""

    def __init__(self, inner: Backend, delay_s: float) -> None:
        self.inner, self.delay_s = inner, delay_s
        self.batch_sizes: list[int] = []

    @property
    def input_names(self) -> tuple[str, ...]:
        return self.inner.input_names

    @property
    def output_names(self) -> tuple[str, ...]:
        return self.inner.output_names

    def run(self, inputs: Mapping[str, npt.NDArray[np.float32]]) -> dict[str, npt.NDArray[np.float32]]:
        self.batch_sizes.append(len(next(iter(inputs.values()))))
        time.sleep(self.delay_s)
        return self.inner.run(inputs)


def _settings(tiny: TinyPackage, tmp_path: Path, port: int, **changes: object) -> AgentSettings:
    # the simulator at full speed, with intervals long enough to hold several batches
    defaults: dict[str, object] = {"telemetry_interval_s": 0.2, "source": SimulatedSourceSettings(windows_per_s=0)}
    return agent_settings(tiny, tmp_path / "agent", port, **(defaults | changes))


def test_a_slow_model_drops_and_counts_instead_of_queueing_without_bound(
    tiny_package: TinyPackage, tmp_path: Path, mqtt_broker: int, subscribe: Any
) -> None:
    telemetry_topic = subscribe("ef/v1/dev-1/telemetry")
    slow: list[_Slow] = []

    def wrap(backend: Backend) -> Backend:
        slow.append(_Slow(backend, 0.02))
        return slow[0]

    agent = Agent(_settings(tiny_package, tmp_path, mqtt_broker, queue_size=8, batch_size=4), wrap_backend=wrap)
    agent.start()
    source = _Counted(3000)
    served = agent.run(source=source)
    agent.close()
    telemetry = [TelemetryV1.model_validate_json(p) for p, _ in telemetry_topic.wait_for("ef/v1/dev-1/telemetry")]
    wait_until(lambda: sum(t.inference_count for t in telemetry) == served, timeout_s=5)
    dropped = sum(t.drop_count for t in telemetry)
    assert dropped > 0
    # every window is accounted for: served, or dropped and counted
    assert served + dropped == source.produced == 3000
    # the model took several queued windows per run: the tiny model's batch axis is free
    assert max(slow[0].batch_sizes) == 4


def test_the_feeder_never_holds_more_than_its_capacity() -> None:
    stop = threading.Event()
    feeder = Feeder(_Counted(500), capacity=5, stop=stop)
    feeder.start()
    wait_until(lambda: feeder.dropped >= 495, timeout_s=5)
    batches = list(feeder.batches(size=100, wait_s=0.05))
    assert sum(len(b) for b in batches if b) == 5
    assert feeder.dropped == 495


def test_a_package_for_another_profile_is_refused_with_an_error_event(
    tiny_package: TinyPackage, tmp_path: Path, mqtt_broker: int, subscribe: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = subscribe("ef/v1/dev-1/events")
    only_pi5 = tiny_package.manifest.model_copy(update={"compatible_profiles": ["rpi5"]})
    monkeypatch.setattr("edge_agent.agent.check_profile", _checker(only_pi5))
    agent = Agent(_settings(tiny_package, tmp_path, mqtt_broker))
    with pytest.raises(AgentError, match="for device profiles rpi5, not for this device's 'rpi4b'"):
        agent.start()
    event = EventV1.model_validate_json(events.wait_for("ef/v1/dev-1/events")[0][0])
    agent.close()
    assert event.kind == EventKind.ERROR
    assert "rpi5" in event.detail


def _checker(manifest: Any) -> Any:
    """The real check, run against ``manifest`` whatever package is installed (the fixture's is for any profile)."""
    from edge_agent.model import check_profile

    return lambda _manifest, profile: check_profile(manifest, profile)


def test_the_agent_picks_among_the_runtimes_it_has() -> None:
    manifest = make_manifest([(ArtifactFormat.ONNX, Precision.INT8), (ArtifactFormat.TFLITE, Precision.INT8)])
    without_onnxruntime = choose_artifact(manifest, (ArtifactFormat.TFLITE,))
    assert without_onnxruntime is not None
    assert without_onnxruntime.format == ArtifactFormat.TFLITE
    assert choose_artifact(manifest, ()) is None
    both = choose_artifact(manifest)
    assert both is not None
    assert both.format == ArtifactFormat.ONNX


class _Port:
    """A serial port's line stream as pyserial gives it with a read timeout: a line, or b"" when none came."""

    def __init__(self, data: bytes) -> None:
        self.lines = data.splitlines(keepends=True)

    def readline(self) -> bytes:
        if self.lines:
            return self.lines.pop(0)
        time.sleep(0.01)
        return b""

    def close(self) -> None:
        self.lines = []


def test_lines_that_do_not_parse_become_an_error_event_and_serving_goes_on(
    tiny_package: TinyPackage, tmp_path: Path, mqtt_broker: int, subscribe: Any
) -> None:
    from edge_agent.sources import SerialLineSource
    from edge_agent.sources.settings import SerialSourceSettings
    from edgefleet.manifest import SensorPreprocessing

    events = subscribe("ef/v1/dev-1/events")
    agent = Agent(_settings(tiny_package, tmp_path, mqtt_broker))
    agent.start()
    spec = agent.model.manifest.preprocessing
    assert isinstance(spec, SensorPreprocessing)
    good = b"".join(b"0.1,0.2,40,3,2.5\n" for _ in range(WINDOW_LENGTH))
    port = _Port(good[: len(good) // 2] + b"0.1,oops,40,3,2.5\n" + b"1,2\n" + good[len(good) // 2 :] + good)
    settings = SerialSourceSettings(kind="serial", port="/dev/ttyTEST")
    source = SerialLineSource(settings, spec, agent._stop, open_stream=lambda: port)
    served = agent.run(max_windows=2, source=source)
    agent.close()
    assert served == 2
    details = [EventV1.model_validate_json(p).detail for p, _ in events.wait_for("ef/v1/dev-1/events", 2)]
    assert any("2 input lines did not parse and were skipped" in d for d in details), details

"""The agent's parts on their own: settings, artifact choice, interval statistics, sequences."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_agent import load_settings
from edge_agent.backends import choose_artifact
from edge_agent.sequence import Sequences
from edge_agent.telemetry import IntervalStats
from edgefleet.errors import ConfigError
from edgefleet.manifest import ArtifactFormat, Precision
from edgefleet.messages import SystemStats
from edgefleet.sensor_sim import CHANNELS, WINDOW_LENGTH
from edgefleet.topics import TopicKind
from tests.factories import make_manifest

pytestmark = pytest.mark.unit


def test_settings_come_from_toml_and_the_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "agent.toml"
    config.write_text('device_id = "pump-7"\nprofile = "rpi4b"\n[broker]\nhost = "10.0.0.5"\nport = 8883\n')
    monkeypatch.setenv("EDGEFLEET_AGENT_BROKER__PORT", "1884")
    settings = load_settings(config)
    assert (settings.device_id, settings.profile, settings.broker.host, settings.broker.port) == (
        "pump-7",
        "rpi4b",
        "10.0.0.5",
        1884,
    )


@pytest.mark.parametrize(
    ("toml", "words"),
    [
        ('device_id = "Pump/7"', "device_id"),
        ('device_id = "p"\n[source]\nfault = "gremlins"', "unknown fault 'gremlins'"),
        ('device_id = "p"\npackage = "x.efpkg"', "no trusted_keys"),
    ],
)
def test_bad_settings_say_what_to_fix(tmp_path: Path, toml: str, words: str) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(toml)
    with pytest.raises(ConfigError, match=words):
        load_settings(config)


def test_a_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_prefers_int8_then_fp32() -> None:
    both = make_manifest([(ArtifactFormat.ONNX, Precision.FP32), (ArtifactFormat.ONNX, Precision.INT8)])
    artifact = choose_artifact(both)
    assert artifact is not None
    assert artifact.precision == Precision.INT8
    assert choose_artifact(make_manifest([(ArtifactFormat.TFLITE, Precision.INT8)])) is None


def test_interval_statistics_add_up() -> None:
    manifest = make_manifest([(ArtifactFormat.ONNX, Precision.FP32)])
    stats = IntervalStats(manifest)
    for i in range(100):
        probs = np.zeros(len(manifest.labels), dtype=np.float32)
        probs[i % 2] = 0.55 + 0.004 * i
        stats.add(np.zeros((len(CHANNELS), WINDOW_LENGTH), dtype=np.float32), probs, latency_ms=float(i + 1))
    stats.errors = 3
    message = stats.message("d1", 5, 0.0, 10.0, None, SystemStats(cpu_percent=1, rss_bytes=1))
    assert message.inference_count == 100
    assert message.error_count == 3
    assert message.latency is not None
    assert (message.latency.p50_ms, message.latency.max_ms) == (50.5, 100.0)
    assert message.latency.p95_ms == pytest.approx(95.05)
    assert message.class_counts[:2] == [50, 50]
    assert sum(message.confidence_counts) == 100


def test_sequences_survive_a_restart(tmp_path: Path) -> None:
    first = Sequences(tmp_path / "seq.json")
    assert [first.take(TopicKind.TELEMETRY) for _ in range(3)] == [0, 1, 2]
    again = Sequences(tmp_path / "seq.json")
    assert again.take(TopicKind.TELEMETRY) == 3
    assert again.take(TopicKind.EVENTS) == 0


def test_a_runtime_failure_is_an_agent_error_the_loop_can_count(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    from edge_agent.backends import OnnxBackend
    from edgefleet.errors import AgentError

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
    )
    path = tmp_path / "relu.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    backend = OnnxBackend(path)
    assert backend.run({"x": np.ones((1, 3), dtype=np.float32)})[0].tolist() == [[1.0, 1.0, 1.0]]
    with pytest.raises(AgentError, match="onnxruntime failed on a batch"):
        backend.run({"x": np.ones((2, 5), dtype=np.float32)})

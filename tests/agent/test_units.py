"""The agent's parts on their own: settings, artifact choice, backend, source, interval statistics, sequences."""

from __future__ import annotations

import threading
from itertools import islice
from pathlib import Path

import numpy as np
import pytest

from edge_agent import load_settings
from edge_agent.agent import as_probabilities
from edge_agent.backends import choose_artifact, load_backend
from edge_agent.outbox import OUTBOX_FILE, Outbox
from edge_agent.sequence import SEQ_FILE, Sequences, spent
from edge_agent.settings import SimulatedSourceSettings
from edge_agent.sources import SimulatedSensor
from edge_agent.system import SystemProbe
from edge_agent.telemetry import DEFAULT_CONFIDENCE_EDGES, IntervalAggregator, Prediction, ReportContext
from edgefleet.errors import AgentError, ConfigError
from edgefleet.manifest import ArtifactFormat, Precision
from edgefleet.messages import SystemStats, TelemetryV1
from edgefleet.sensor_sim import CHANNELS, FAULTS, WINDOW_LENGTH
from edgefleet.topics import TopicKind
from tests.agent.conftest import CONFIDENCE_EDGES, TinyPackage
from tests.factories import make_manifest

pytestmark = pytest.mark.unit

SYSTEM = SystemStats(cpu_percent=1, rss_bytes=1)
CONTEXT = ReportContext("d1", None)


def test_settings_come_from_toml_and_the_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(
        'device_id = "pump-7"\nprofile = "rpi4b"\ntelemetry_interval_s = 5\n'
        '[broker]\nhost = "10.0.0.5"\nport = 8883\n[source]\nfault = "looseness"\n'
    )
    monkeypatch.setenv("EDGEFLEET_AGENT_BROKER__PORT", "1884")
    monkeypatch.setenv("EDGEFLEET_AGENT_SOURCE__SEED", "7")
    settings = load_settings(config)
    assert (settings.device_id, settings.profile, settings.telemetry_interval_s) == ("pump-7", "rpi4b", 5)
    assert (settings.broker.host, settings.broker.port) == ("10.0.0.5", 1884)
    assert isinstance(settings.source, SimulatedSourceSettings)
    assert (settings.source.fault, settings.source.seed) == ("looseness", 7)


@pytest.mark.parametrize(
    ("toml", "words"),
    [
        ('device_id = "Pump/7"', "device_id"),
        ('device_id = "p"\n[source]\nfault = "gremlins"', "unknown fault 'gremlins'"),
        ('device_id = "p"\npackage = "x.efpkg"', "no trusted_keys"),
        ('device_id = "p"\n[broker]\npassword = "s3cret"', "set broker.username"),
        ('device_id = "p"\nthreads = 0', "threads"),
        ('device_id = "p"\ncolour = "blue"', "colour"),
    ],
)
def test_bad_settings_say_what_to_fix(tmp_path: Path, toml: str, words: str) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(toml)
    with pytest.raises(ConfigError, match=words) as caught:
        load_settings(config)
    assert "EDGEFLEET_AGENT_" in caught.value.hint


def test_a_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_prefers_int8_then_fp32() -> None:
    both = make_manifest([(ArtifactFormat.ONNX, Precision.FP32), (ArtifactFormat.ONNX, Precision.INT8)])
    artifact = choose_artifact(both)
    assert artifact is not None
    assert artifact.precision == Precision.INT8
    # int8 on either runtime comes before fp32, and ONNX before TFLite at the same precision
    mixed = [(ArtifactFormat.ONNX, Precision.FP32), (ArtifactFormat.TFLITE, Precision.INT8)]
    chosen = choose_artifact(make_manifest(mixed))
    assert chosen is not None
    assert (chosen.format, chosen.precision) == (ArtifactFormat.TFLITE, Precision.INT8)
    assert choose_artifact(make_manifest([(ArtifactFormat.ORT, Precision.INT8)])) is None


def test_a_format_without_a_runtime_is_refused_by_name(tmp_path: Path) -> None:
    ort_format = make_manifest([(ArtifactFormat.ORT, Precision.INT8)]).artifacts[0]
    with pytest.raises(AgentError, match="no runtime for ort"):
        load_backend(ort_format, tmp_path / "m.ort", 1)


def test_the_onnx_backend_runs_a_batch_by_name(tiny_package: TinyPackage) -> None:
    from edgefleet.package import open_package
    from edgefleet.signing import load_public_keys

    batch = np.zeros((3, len(CHANNELS), WINDOW_LENGTH), dtype=np.float32)
    opened = open_package(
        tiny_package.path, tiny_package.path.parent / "opened", load_public_keys([tiny_package.public_key])
    )
    artifact = opened.manifest.artifacts[0]
    backend = load_backend(artifact, opened.artifact_path(artifact), threads=2)
    assert (backend.input_names, backend.output_names) == (("x",), ("probs",))
    probs = backend.run({"x": batch})["probs"]
    assert probs.shape == (3, len(FAULTS))
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_a_runtime_failure_is_an_agent_error_the_loop_can_count(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    from edge_agent.backends.onnx import OnnxBackend

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
    )
    path = tmp_path / "relu.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    backend = OnnxBackend(path)
    assert backend.run({"x": np.ones((1, 3), dtype=np.float32)})["y"].tolist() == [[1.0, 1.0, 1.0]]
    with pytest.raises(AgentError, match="onnxruntime failed on a batch"):
        backend.run({"x": np.ones((2, 5), dtype=np.float32)})
    with pytest.raises(AgentError, match="cannot load"):
        OnnxBackend(tmp_path / "missing.onnx")


def test_probabilities_stay_and_logits_are_softmaxed() -> None:
    probs = np.asarray([0.1, 0.7, 0.2], dtype=np.float32)
    assert as_probabilities(probs).tolist() == probs.tolist()
    quantized = np.asarray([0.0117, 0.9609, 0.0], dtype=np.float32)  # an int8 model's output, 0.03 short of 1
    assert as_probabilities(quantized).tolist() == quantized.tolist()
    soft = as_probabilities(np.asarray([2.0, -1.0, 900.0], dtype=np.float32))
    assert soft.sum() == pytest.approx(1.0)
    assert int(soft.argmax()) == 2


def _windows(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, len(CHANNELS), WINDOW_LENGTH)).astype(np.float32)


def test_interval_statistics_add_up(tiny_package: TinyPackage) -> None:
    aggregator = IntervalAggregator(tiny_package.manifest)
    windows = _windows(150)  # more than one sketch batch, and a partial one at the end
    for i, window in enumerate(windows):
        aggregator.add(window, Prediction(label=i % 3, confidence=0.2 + 0.005 * i, latency_ms=float(i + 1)))
    aggregator.errors, aggregator.drops = 3, 4
    message = aggregator.message(CONTEXT, seq=5, ts=1.0, interval_s=10.0, system=SYSTEM)
    TelemetryV1.model_validate_json(message.model_dump_json(by_alias=True))
    assert (message.inference_count, message.error_count, message.drop_count, message.seq) == (150, 3, 4, 5)
    assert message.latency is not None
    assert (message.latency.p50_ms, message.latency.max_ms) == (75.5, 150.0)
    assert message.latency.p95_ms == pytest.approx(np.percentile(np.arange(1, 151), 95))
    assert message.class_counts == [50, 50, 50] + [0] * (len(FAULTS) - 3)  # aligned with the labels
    # the manifest's confidence bins, not the default ones: 0.2 … 0.945 in steps of 0.005
    assert len(message.confidence_counts) == len(CONFIDENCE_EDGES) - 1
    assert message.confidence_counts == [10, 50, 50, 40]
    reference = tiny_package.manifest.reference_profile
    assert reference is not None
    assert set(message.sketches) == {f.name for f in reference.features}
    for feature in reference.features:
        assert len(message.sketches[feature.name]) == len(feature.histogram.counts)
        assert sum(message.sketches[feature.name]) == 150


def test_sketches_count_the_raw_windows_into_the_reference_bins(tiny_package: TinyPackage) -> None:
    from edgefleet.sketch import count_into, sensor_features

    windows = _windows(20, seed=3) * 5 + 2
    aggregator = IntervalAggregator(tiny_package.manifest)
    for window in windows:
        aggregator.add(window, Prediction(0, 0.9, 1.0))
    message = aggregator.message(CONTEXT, seq=0, ts=0.0, interval_s=1.0, system=SYSTEM)
    values = sensor_features(windows, [name for name, _ in CHANNELS])
    reference = tiny_package.manifest.reference_profile
    assert reference is not None
    for feature in reference.features:
        assert message.sketches[feature.name] == count_into(feature.histogram.edges, values[feature.name])


def test_without_a_reference_profile_confidence_has_ten_bins_and_no_sketches() -> None:
    aggregator = IntervalAggregator(make_manifest([(ArtifactFormat.ONNX, Precision.FP32)]))
    for confidence in (0.05, 0.55, 0.999, 1.0):
        aggregator.add(_windows(1)[0], Prediction(1, confidence, 2.0))
    message = aggregator.message(CONTEXT, seq=0, ts=0.0, interval_s=1.0, system=SYSTEM)
    assert len(DEFAULT_CONFIDENCE_EDGES) == 11
    assert message.confidence_counts == [1, 0, 0, 0, 0, 1, 0, 0, 0, 2]
    assert message.sketches == {}


def test_an_empty_interval_is_a_valid_message_without_latency(tiny_package: TinyPackage) -> None:
    message = IntervalAggregator(tiny_package.manifest).message(CONTEXT, seq=0, ts=0.0, interval_s=1.0, system=SYSTEM)
    assert (message.inference_count, message.latency) == (0, None)
    assert all(sum(c) == 0 for c in message.sketches.values())


def test_the_simulated_source_gives_raw_windows_of_the_channels() -> None:
    stop = threading.Event()
    settings = SimulatedSourceSettings(fault="imbalance", seed=4, windows_per_s=0)
    windows = list(islice(SimulatedSensor(settings, stop), 3))
    again = list(islice(SimulatedSensor(settings, stop), 3))
    assert [w.shape for w in windows] == [(len(CHANNELS), WINDOW_LENGTH)] * 3
    assert all(w.dtype == np.float32 and np.isfinite(w).all() for w in windows)
    assert all(np.array_equal(a, b) for a, b in zip(windows, again, strict=True))  # the seed fixes the stream
    stop.set()
    assert list(SimulatedSensor(settings, stop)) == []


def test_a_slow_consumer_makes_the_source_drop_windows_and_count_them() -> None:
    now = [0.0]

    def clock() -> float:
        now[0] += 1.0  # one second passes between any two looks at the clock: the agent is slow
        return now[0]

    source = SimulatedSensor(SimulatedSourceSettings(windows_per_s=10), threading.Event(), clock=clock)
    taken = list(islice(source, 4))
    assert len(taken) == 4
    assert source.dropped >= 3 * 9  # about ten windows came due per second, one was taken


def test_sequences_survive_a_restart(tmp_path: Path) -> None:
    first = Sequences(tmp_path / "seq.json")
    assert [first.take(TopicKind.TELEMETRY) for _ in range(3)] == [0, 1, 2]
    again = Sequences(tmp_path / "seq.json")
    assert again.take(TopicKind.TELEMETRY) == 3
    assert again.take(TopicKind.EVENTS) == 0


def test_a_report_seq_is_spent_only_once_the_outbox_stores_it(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / OUTBOX_FILE, max_messages=100, max_bytes=1 << 20)
    seqs = Sequences(tmp_path / SEQ_FILE, outbox.numbered())
    for _ in range(2):
        seq = seqs.reserve(TopicKind.TELEMETRY)
        outbox.put(TopicKind.TELEMETRY, "t", seq, b"report")
    outbox.remove([q.id for q in outbox.peek(after_id=0, limit=10)])  # acknowledged: gone from the outbox
    seqs.reserve(TopicKind.TELEMETRY)  # numbered, and the agent is killed before it stores the report
    outbox.close()
    assert spent(tmp_path, TopicKind.TELEMETRY) == 2
    again = Outbox(tmp_path / OUTBOX_FILE, max_messages=100, max_bytes=1 << 20)
    # after the restart the next report takes that number again: no hole the server would count as lost
    assert Sequences(tmp_path / SEQ_FILE, again.numbered()).reserve(TopicKind.TELEMETRY) == 2
    again.close()


def test_the_system_probe_reads_this_process() -> None:
    stats = SystemProbe().read()
    assert stats.rss_bytes > 1_000_000
    assert stats.cpu_percent >= 0


def test_the_readme_agent_config_loads(tmp_path: Path) -> None:
    import re

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = re.search(r"```toml\n(device_id.*?)```", readme, re.S)
    assert block is not None
    text = block.group(1)
    # the example's files exist on a device, not here: point them at real files, keep everything else
    for path in sorted(set(re.findall(r'"(/[^"]+)"', text))):
        local = tmp_path / Path(path).name
        local.write_text("")
        text = text.replace(f'"{path}"', f'"{local}"')
    config = tmp_path / "agent.toml"
    config.write_text(text)
    settings = load_settings(config)
    assert settings.broker.tls
    assert settings.source.kind == "simulated"

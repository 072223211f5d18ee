"""The real agent against a real broker: status with a last will, telemetry per interval, offline on close."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_agent import Agent, AgentSettings, BrokerSettings, SimulatedSourceSettings
from edgefleet.errors import AgentError, PackageError
from edgefleet.messages import EventV1, StatusV1, TelemetryV1
from edgefleet.sensor_sim import FAULTS
from tests.conftest import Pipeline, Recorder

pytestmark = pytest.mark.integration


def _settings(pipeline: Pipeline, tmp_path: Path, port: int, **changes: object) -> AgentSettings:
    base = {
        "device_id": "dev-1",
        "profile": "rpi4b",
        "data_dir": tmp_path / "agent",
        "broker": BrokerSettings(port=port),
        "package": pipeline.package,
        "trusted_keys": [pipeline.public_key],
        "telemetry_interval_s": 0.2,
        "source": SimulatedSourceSettings(fault="bearing_outer", windows_per_s=0),
    }
    return AgentSettings.model_validate(base | changes)


def test_reports_status_telemetry_and_goes_offline(pipeline: Pipeline, tmp_path: Path, broker: int) -> None:
    recorder = Recorder(broker, "ef/v1/dev-1/#")
    agent = Agent(_settings(pipeline, tmp_path, broker))
    agent.start()
    served = agent.run(max_windows=60)
    agent.close()

    status = [StatusV1.model_validate_json(p) for p in recorder.payloads_when("ef/v1/dev-1/status", 2)]
    assert status[0].state == "online"
    assert status[0].model is not None
    assert status[0].model.artifact.endswith("int8.onnx")
    assert status[-1].state == "offline"
    telemetry = [TelemetryV1.model_validate_json(p) for p in recorder.payloads("ef/v1/dev-1/telemetry")]
    assert sum(t.inference_count for t in telemetry) == served == 60
    assert [t.seq for t in telemetry] == list(range(len(telemetry)))
    # the model sees the fault it was trained on, and the sketches count every window
    classes = [sum(c) for c in zip(*(t.class_counts for t in telemetry), strict=True)]
    assert classes.index(max(classes)) == FAULTS.index("bearing_outer")
    last = telemetry[-1]
    assert sum(last.sketches["accel_x.rms"]) == last.inference_count
    assert last.system is not None
    assert last.system.rss_bytes > 0
    events = [EventV1.model_validate_json(p) for p in recorder.payloads("ef/v1/dev-1/events")]
    assert events[0].kind == "active"
    recorder.close()


def test_a_restarted_agent_continues_its_sequence(pipeline: Pipeline, tmp_path: Path, broker: int) -> None:
    recorder = Recorder(broker, "ef/v1/dev-1/telemetry")
    for _ in range(2):
        agent = Agent(_settings(pipeline, tmp_path, broker, telemetry_interval_s=100))
        agent.start()
        agent.run(max_windows=3)
        agent.close()
    seqs = [TelemetryV1.model_validate_json(p).seq for p in recorder.payloads_when("ef/v1/dev-1/telemetry", 2)]
    assert seqs == [0, 1]
    recorder.close()


def test_refuses_a_package_signed_by_an_untrusted_key(pipeline: Pipeline, tmp_path: Path, broker: int) -> None:
    from edgefleet.signing import generate_keys

    _, other = generate_keys(tmp_path / "other")
    with pytest.raises(PackageError, match="not among the trusted keys"):
        Agent(_settings(pipeline, tmp_path, broker, trusted_keys=[other])).start()


def test_refuses_to_serve_a_model_that_misses_its_test_vectors(pipeline: Pipeline, tmp_path: Path) -> None:
    from edge_agent.model import install_package, load_model
    from edgefleet.signing import load_public_keys
    from edgefleet.tensors import decode_tensor, encode_tensor

    opened = install_package(pipeline.package, tmp_path / "slot", load_public_keys([pipeline.public_key]))
    int8 = next(a for a in opened.manifest.artifacts if a.precision == "int8")
    vectors = opened.manifest.test_vectors
    assert vectors is not None
    # expected outputs of all zeros: no classifier that outputs probabilities can meet them
    probs = decode_tensor(vectors.expected[int8.path].outputs["probs"])
    wrong = vectors.expected[int8.path].model_copy(update={"outputs": {"probs": encode_tensor(np.zeros_like(probs))}})
    changed = vectors.model_copy(update={"expected": {int8.path: wrong}})
    tampered = opened.__class__(
        opened.manifest.model_copy(update={"test_vectors": changed}), "0" * 64, "k", opened.root
    )
    with pytest.raises(AgentError, match="misses its test vectors"):
        load_model(tampered, threads=1)

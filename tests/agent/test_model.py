"""Installing and loading a package on the device: trust, slot reuse and repair, the smoke test, one inference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_agent import Agent, AgentSettings, SimulatedSourceSettings
from edge_agent.model import load_model
from edgefleet.errors import AgentError, ConfigError, PackageError
from edgefleet.package import open_package
from edgefleet.sensor_sim import FAULTS, Recording
from edgefleet.signing import generate_keys, load_public_keys
from edgefleet.tensors import decode_tensor, encode_tensor
from tests.agent.conftest import TinyPackage

pytestmark = pytest.mark.unit


def _agent(tiny: TinyPackage, tmp_path: Path, **changes: object) -> Agent:
    base: dict[str, object] = {
        "device_id": "dev-1",
        "data_dir": tmp_path / "agent",
        "package": tiny.path,
        "trusted_keys": [tiny.public_key],
        "source": SimulatedSourceSettings(windows_per_s=0),
    }
    return Agent(AgentSettings.model_validate(base | changes))


def test_loads_the_int8_artifact_and_answers_one_window(tiny_package: TinyPackage, tmp_path: Path) -> None:
    agent = _agent(tiny_package, tmp_path)
    model = agent.load()
    assert model.artifact.path == "model-int8.onnx"
    assert model.active.sha256 != "0" * 64
    assert (tmp_path / "agent" / "slots" / "a" / "model-int8.onnx").is_file()
    rng = np.random.default_rng(0)
    prediction = agent.infer(Recording.random(FAULTS.index("looseness"), rng).window(0, rng))
    assert 0 <= prediction.label < len(FAULTS)
    assert 1 / len(FAULTS) <= prediction.confidence <= 1.0
    assert prediction.latency_ms > 0


def test_a_slot_that_holds_the_package_is_reused_and_a_damaged_one_replaced(
    tiny_package: TinyPackage, tmp_path: Path
) -> None:
    slots = tmp_path / "agent" / "slots"
    _agent(tiny_package, tmp_path).load()
    first = (slots / "a" / "model-int8.onnx").stat().st_mtime_ns
    _agent(tiny_package, tmp_path).load()
    assert (slots / "a" / "model-int8.onnx").stat().st_mtime_ns == first  # not extracted again
    (slots / "a" / "model-int8.onnx").write_bytes(b"rotten")
    model = _agent(tiny_package, tmp_path).load()
    # the rotten slot is never loaded: the package goes into the other slot, which then runs
    assert model.active.slot == "b"
    assert (slots / "b" / "model-int8.onnx").read_bytes() != b"rotten"


def test_refuses_a_package_signed_by_an_untrusted_key(tiny_package: TinyPackage, tmp_path: Path) -> None:
    _, other = generate_keys(tmp_path / "other")
    with pytest.raises(PackageError, match="not among the trusted keys"):
        _agent(tiny_package, tmp_path, trusted_keys=[other]).load()
    assert not (tmp_path / "agent" / "slots" / "a").exists()


def test_without_a_package_there_is_nothing_to_run(tmp_path: Path) -> None:
    agent = Agent(AgentSettings(device_id="dev-1", data_dir=tmp_path))
    with pytest.raises(ConfigError, match="no package"):
        agent.load()
    with pytest.raises(AgentError, match="no model loaded"):
        agent.infer(np.zeros((1, 1), dtype=np.float32))


def test_refuses_to_serve_a_model_that_misses_its_test_vectors(tiny_package: TinyPackage, tmp_path: Path) -> None:
    opened = open_package(tiny_package.path, tmp_path / "slot", load_public_keys([tiny_package.public_key]))
    vectors = opened.manifest.test_vectors
    assert vectors is not None
    int8 = vectors.expected["model-int8.onnx"]
    # expected outputs of all zeros: no classifier that outputs probabilities can meet them
    zeros = encode_tensor(np.zeros_like(decode_tensor(int8.outputs["probs"])))
    changed = vectors.model_copy(
        update={"expected": {"model-int8.onnx": int8.model_copy(update={"outputs": {"probs": zeros}})}}
    )
    tampered = opened.__class__(
        opened.manifest.model_copy(update={"test_vectors": changed}), "0" * 64, "k", opened.root
    )
    with pytest.raises(AgentError, match="misses its test vectors"):
        load_model(tampered, threads=1)


def test_refuses_a_model_whose_tensors_the_manifest_does_not_name(tiny_package: TinyPackage, tmp_path: Path) -> None:
    opened = open_package(tiny_package.path, tmp_path / "slot", load_public_keys([tiny_package.public_key]))
    renamed = [o.model_copy(update={"name": "scores"}) for o in opened.manifest.outputs]
    manifest = opened.manifest.model_copy(update={"outputs": renamed, "test_vectors": None})
    with pytest.raises(AgentError, match="no tensor named scores"):
        load_model(opened.__class__(manifest, "0" * 64, "k", opened.root), threads=1)

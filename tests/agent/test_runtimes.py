"""The artifact a device runs follows the package's artifacts and the device profile's runtimes, best first."""

from __future__ import annotations

from pathlib import Path

import pytest

from devices.profiles import PROFILES
from edge_agent import Agent, AgentSettings
from edge_agent.backends import choose_artifact, installed_formats
from edgefleet.errors import EdgefleetError
from edgefleet.manifest import ArtifactFormat, Precision
from tests.conftest import Pipeline
from tests.factories import make_manifest


def _settings(pipeline: Pipeline, tmp_path: Path, runtimes: list[str]) -> AgentSettings:
    return AgentSettings.model_validate(
        {
            "device_id": "dev-1",
            "data_dir": tmp_path / "agent",
            "package": pipeline.package,
            "trusted_keys": [pipeline.public_key],
            "runtimes": runtimes,
        }
    )


def test_precision_counts_before_the_profiles_runtime_order() -> None:
    manifest = make_manifest(
        [
            (ArtifactFormat.ONNX, Precision.FP32),
            (ArtifactFormat.TFLITE, Precision.FP32),
            (ArtifactFormat.ONNX, Precision.INT8),
        ]
    )
    litert_first = choose_artifact(manifest, (ArtifactFormat.TFLITE, ArtifactFormat.ONNX))
    assert litert_first is not None
    # int8 on the second runtime beats fp32 on the first
    assert (litert_first.format, litert_first.precision) == (ArtifactFormat.ONNX, Precision.INT8)
    fp32_only = make_manifest([(ArtifactFormat.ONNX, Precision.FP32), (ArtifactFormat.TFLITE, Precision.FP32)])
    chosen = choose_artifact(fp32_only, (ArtifactFormat.TFLITE, ArtifactFormat.ONNX))
    assert chosen is not None
    assert chosen.format == ArtifactFormat.TFLITE


def test_mobile_runtimes_and_missing_ones_give_no_format() -> None:
    assert installed_formats(("coreml", "executorch")) == ()
    # this machine has both runtimes; the profile's order decides which comes first
    assert installed_formats(("litert", "onnxruntime")) == (ArtifactFormat.TFLITE, ArtifactFormat.ONNX)
    assert installed_formats(PROFILES["rpi5"].runtimes) == (ArtifactFormat.ONNX, ArtifactFormat.TFLITE)


@pytest.mark.parametrize(
    ("runtimes", "artifact"),
    [(["onnxruntime", "litert"], "int8.onnx"), (["litert", "onnxruntime"], "int8.tflite"), (["litert"], "int8.tflite")],
)
def test_the_agent_loads_what_its_profile_runs_best(
    pipeline: Pipeline, tmp_path: Path, runtimes: list[str], artifact: str
) -> None:
    model = Agent(_settings(pipeline, tmp_path, runtimes)).load()
    assert model.artifact.path.endswith(artifact)
    assert model.active.artifact == model.artifact.path


def test_a_device_without_any_of_the_packages_runtimes_is_told_what_to_do(pipeline: Pipeline, tmp_path: Path) -> None:
    with pytest.raises(EdgefleetError) as caught:
        Agent(_settings(pipeline, tmp_path, ["coreml"])).load()
    assert "runs none of the package's artifacts" in caught.value.message
    assert "coreml" in caught.value.message

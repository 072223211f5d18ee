"""Training, export and packaging produce a package whose artifacts meet their own test vectors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgefleet.errors import InputError
from edgefleet.manifest import ArtifactFormat, Precision
from edgefleet.package import open_package
from edgefleet.signing import load_public_keys
from edgefleet.tensors import decode_tensor
from export import ExportOptions, export_run
from export.measure import run_artifact
from tests.conftest import Pipeline
from train import load_run

pytestmark = pytest.mark.integration


def test_training_writes_a_run_that_classifies_held_out_recordings(pipeline: Pipeline) -> None:
    run = load_run(pipeline.run)
    assert run.metrics["macro_f1"] >= 0.9
    assert run.reference_profile.sample_count > 0
    # the reference describes normal service: what the model says on held-out normal windows is mostly "normal"
    counts = run.reference_profile.class_counts
    assert counts.index(max(counts)) == run.labels.index("normal")
    assert run.metrics["reference_nominal"] == 1.0
    assert {f.name for f in run.reference_profile.features} >= {"accel_x.rms", "temperature.mean"}


def test_int8_artifact_is_smaller_and_agrees_with_pytorch(pipeline: Pipeline) -> None:
    report = json.loads((pipeline.export / "export.json").read_text())
    by_precision = {a["precision"]: a for a in report["artifacts"]}
    assert by_precision["int8"]["size_bytes"] < 0.6 * by_precision["fp32"]["size_bytes"]
    assert by_precision["fp32"]["max_abs_diff"] < 1e-4
    assert by_precision["int8"]["top1_agreement"] >= 0.95


def test_every_packaged_artifact_meets_its_test_vectors(pipeline: Pipeline, tmp_path: Path) -> None:
    opened = open_package(pipeline.package, tmp_path / "pkg", load_public_keys([pipeline.public_key]))
    vectors = opened.manifest.test_vectors
    assert vectors is not None
    inputs = {name: decode_tensor(t) for name, t in vectors.inputs.items()}
    assert {(a.format, a.precision) for a in opened.manifest.artifacts} == {
        (f, p) for f in ("onnx", "tflite") for p in ("fp32", "int8")
    }
    for artifact in opened.manifest.artifacts:
        x = np.asarray(inputs["x"], dtype=np.float32)
        got = run_artifact(artifact.format, opened.artifact_path(artifact), x)["probs"]
        expected = vectors.expected[artifact.path]
        want = np.asarray(decode_tensor(expected.outputs["probs"]), dtype=np.float32)
        assert np.abs(got - want).max() <= expected.atol
        np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=0.05)  # probabilities, as the contract says


def test_an_unsupported_combination_is_refused_before_any_work(pipeline: Pipeline, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not available"):
        export_run(pipeline.run, tmp_path / "x", ExportOptions(formats=(ArtifactFormat.ORT,)))
    with pytest.raises(InputError, match="no precision"):
        export_run(pipeline.run, tmp_path / "x", ExportOptions(precisions=()))
    assert not (tmp_path / "x").exists()


def test_a_folder_that_is_not_a_run_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"holds no run\.json"):
        export_run(tmp_path, tmp_path / "x", ExportOptions(precisions=(Precision.FP32,)))


def test_training_writes_per_class_metrics_and_a_confusion_matrix_picture(pipeline: Pipeline) -> None:
    from train.metrics import TrainingMetrics

    report = TrainingMetrics.model_validate_json((pipeline.run / "metrics.json").read_text()).classification
    assert [c.label for c in report.per_class] == report.labels
    assert sum(map(sum, report.confusion)) == sum(c.support for c in report.per_class) > 0
    assert (pipeline.run / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_same_seed_trains_the_same_model(tmp_path: Path) -> None:
    import torch

    from train import PdmConfig, train_pdm

    config = PdmConfig(epochs=2, recordings_per_class=4, windows_per_recording=4, seed=3)
    train_pdm(config, tmp_path / "a")
    train_pdm(config, tmp_path / "b")
    a = torch.load(tmp_path / "a" / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "model.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_run_can_be_evaluated_on_new_recordings_of_its_classes(pipeline: Pipeline) -> None:
    from train.datasets import SensorDataset, synthetic_dataset
    from train.evaluate import evaluate_run

    fresh = synthetic_dataset(4, 4, seed=99)
    assert evaluate_run(pipeline.run, fresh).macro_f1 >= 0.8
    relabelled = SensorDataset(
        fresh.windows, fresh.labels, fresh.groups, ("a",) * 6, fresh.channels, fresh.sample_rate_hz, "x"
    )
    with pytest.raises(InputError, match="not the run's"):
        evaluate_run(pipeline.run, relabelled)

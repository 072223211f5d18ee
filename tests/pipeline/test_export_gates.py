"""Export gates, reports and estimates: what leaves the server is measured, and a miss stops it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from devices.profiles import PROFILES
from edgefleet.errors import InputError, UnsupportedModelError
from edgefleet.manifest import ArtifactFormat, Precision
from edgefleet.package import open_package
from edgefleet.signing import load_public_keys
from export import ExportOptions, ExportReport, export_run
from export.tflite import export_tflite
from tests.conftest import Pipeline

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _report(pipeline: Pipeline) -> ExportReport:
    return ExportReport.model_validate_json((pipeline.export / "export.json").read_text())


def test_every_artifact_passes_its_gates_with_the_default_limits(pipeline: Pipeline) -> None:
    report = _report(pipeline)
    assert not report.failed
    for artifact in report.artifacts:
        assert {g.name for g in artifact.gates} == {"max_abs_diff", "top1_agreement", "accuracy_drop"}
        assert artifact.accuracy_drop == pytest.approx(report.float_accuracy - artifact.accuracy)
        assert 0 < artifact.latency_p50_ms <= artifact.latency_p95_ms


def test_the_html_report_shows_a_plot_every_artifact_and_the_estimates(pipeline: Pipeline) -> None:
    page = (pipeline.export / "export.html").read_text()
    assert 'src="data:image/png;base64,' in page
    for artifact in _report(pipeline).artifacts:
        assert artifact.path in page
    assert "every artifact passed its gates" in page
    assert "Estimates, not measurements" in page


def test_the_package_carries_profiles_estimates_and_float_against_quantized_metrics(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    manifest = open_package(pipeline.package, tmp_path / "pkg", load_public_keys([pipeline.public_key])).manifest
    assert {"rpi4b", "rpi-zero-2w", "x86-gateway"} <= set(manifest.compatible_profiles)
    pairs = {(e.profile, e.artifact) for e in manifest.latency_estimates}
    assert pairs == {(p, a.path) for p in manifest.compatible_profiles for a in manifest.artifacts}
    by_pair = {(e.profile, e.artifact): e for e in manifest.latency_estimates}
    int8 = next(a.path for a in manifest.artifacts if a.precision == "int8" and a.format == "onnx")
    # a Zero 2 W is slower than a Pi 5 by the ratio of their profile factors, and both are marked estimates
    ratio = by_pair["rpi-zero-2w", int8].p50_ms / by_pair["rpi5", int8].p50_ms
    assert ratio == pytest.approx(PROFILES["rpi-zero-2w"].latency_factor / PROFILES["rpi5"].latency_factor)
    assert by_pair["rpi5", int8].basis.startswith("estimate")
    assert "float_accuracy" in manifest.metrics.reference
    assert {"accuracy", "accuracy_drop", "latency_p50_ms"} <= set(manifest.metrics.artifacts[int8])


def test_a_missed_gate_exits_1_and_names_the_artifact_and_the_miss(pipeline: Pipeline, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "edgefleet", "export", str(pipeline.run), "--out", str(tmp_path / "x"),
         "--formats", "onnx", "--precisions", "fp32,int8", "--max-abs-diff", "int8=0.000001"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "pump-vibration-int8.onnx: max_abs_diff" in result.stderr
    assert "missed by" in result.stderr
    assert "pump-vibration-fp32.onnx:" not in result.stderr
    assert "Traceback" not in result.stderr
    # the report is still written, so the miss can be looked at
    report = ExportReport.model_validate_json((tmp_path / "x" / "export.json").read_text())
    assert [a.path for a in report.failed] == ["pump-vibration-int8.onnx"]
    assert "FAILED" in (tmp_path / "x" / "export.html").read_text()


def test_an_operator_litert_cannot_take_is_named_with_exit_code_2(tmp_path: Path) -> None:
    class Decomposes(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.linalg.svd(x)[1]

    with pytest.raises(UnsupportedModelError, match="svd") as caught:
        export_tflite(Decomposes(), torch.randn(1, 4, 4), tmp_path / "m.tflite", "x", ("probs",))
    assert caught.value.exit_code == 2


def _copy_run(pipeline: Pipeline, tmp_path: Path) -> Path:
    return Path(shutil.copytree(pipeline.run, tmp_path / "run"))


def test_an_empty_calibration_set_is_refused_before_any_work(pipeline: Pipeline, tmp_path: Path) -> None:
    run = _copy_run(pipeline, tmp_path)
    with np.load(run / "data.npz") as data:
        arrays = {k: data[k] for k in data.files}
    arrays["train_inputs"] = arrays["train_inputs"][:0]
    np.savez(run / "data.npz", **arrays)
    with pytest.raises(InputError, match="no training inputs to calibrate"):
        export_run(run, tmp_path / "x", ExportOptions(formats=(ArtifactFormat.ONNX,), precisions=(Precision.INT8,)))
    assert not (tmp_path / "x").exists()


def test_a_corrupt_checkpoint_exits_2_with_what_to_do(pipeline: Pipeline, tmp_path: Path) -> None:
    run = _copy_run(pipeline, tmp_path)
    (run / "model.pt").write_bytes(b"not a checkpoint")
    result = subprocess.run(
        [sys.executable, "-m", "edgefleet", "export", str(run), "--out", str(tmp_path / "x")],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 2
    assert "incomplete" in result.stderr
    assert "train again" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("fmt", [ArtifactFormat.ONNX, ArtifactFormat.TFLITE])
def test_int8_of_the_sensor_model_is_at_most_three_tenths_of_fp32_and_passes(
    pipeline: Pipeline, fmt: ArtifactFormat
) -> None:
    by_kind = {(a.format, a.precision): a for a in _report(pipeline).artifacts}
    fp32, int8 = by_kind[fmt, Precision.FP32], by_kind[fmt, Precision.INT8]
    assert int8.size_bytes <= 0.30 * fp32.size_bytes
    assert all(g.passed for g in int8.gates)
    assert int8.accuracy_drop <= 0.005


@pytest.fixture(scope="module")
def image_export(tmp_path_factory: pytest.TempPathFactory) -> ExportReport:
    """The reference image CNN (64×64, width 0.5) on half the images, trained briefly: sizes depend on the
    architecture alone, and the gates compare each artifact with the float model it came from."""
    from train import VisionConfig, train_vision

    root = tmp_path_factory.mktemp("image")
    train_vision(VisionConfig(per_class=200, epochs=5), root / "run")
    return export_run(root / "run", root / "export", ExportOptions(latency_runs=5))


@pytest.mark.parametrize("fmt", [ArtifactFormat.ONNX, ArtifactFormat.TFLITE])
def test_int8_of_the_image_model_is_at_most_three_tenths_of_fp32_and_passes(
    image_export: ExportReport, fmt: ArtifactFormat
) -> None:
    by_kind = {(a.format, a.precision): a for a in image_export.artifacts}
    fp32, int8 = by_kind[fmt, Precision.FP32], by_kind[fmt, Precision.INT8]
    assert int8.size_bytes <= 0.30 * fp32.size_bytes
    assert all(g.passed for g in fp32.gates)
    assert all(g.passed for g in int8.gates)

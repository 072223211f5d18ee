"""Remaining useful life: the RUL head trains on runs to failure and on C-MAPSS files, and exports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgefleet.manifest import ArtifactFormat, Precision
from export.measure import run_artifact
from export.pipeline import ExportOptions, export_run
from train import PdmConfig, train_pdm
from train.metrics import TrainingMetrics

pytestmark = pytest.mark.integration


def test_runs_to_failure_train_an_rul_head_that_beats_the_mean_and_exports(tmp_path: Path) -> None:
    config = PdmConfig(name="rul", run_to_failure=True, runs_per_fault=4, epochs=12, seed=1)
    run = train_pdm(config, tmp_path / "run")
    assert run.rul is not None
    assert (run.rul.cap, run.rul.unit) == (80.0, "h")
    metrics = TrainingMetrics.model_validate_json((tmp_path / "run" / "metrics.json").read_text())
    assert metrics.rul is not None
    assert metrics.rul.rmse < metrics.rul.baseline_rmse

    options = ExportOptions(formats=(ArtifactFormat.ONNX,), precisions=(Precision.FP32,), latency_runs=5)
    report = export_run(tmp_path / "run", tmp_path / "export", options)
    assert [o.name for o in report.outputs] == ["probs", "rul"]
    with np.load(tmp_path / "run" / "data.npz") as data:
        inputs, truth = data["held_out_inputs"], data["held_out_rul"]
    from edgefleet.preprocess import prepare_inputs

    artifact = tmp_path / "export" / report.artifacts[0].path
    outputs = run_artifact(ArtifactFormat.ONNX, artifact, prepare_inputs(inputs, run.preprocessing))
    rul = outputs["rul"].ravel()
    assert outputs["probs"].sum(axis=1) == pytest.approx(1.0, abs=1e-4)
    assert (rul >= 0).all()
    assert (rul <= 80.0).all()
    # the exported head gives the same figure training reported, in hours
    assert np.sqrt(np.mean((rul - truth) ** 2)) == pytest.approx(metrics.rul.rmse, rel=1e-3)


def _write_cmapss(folder: Path, units: int, rng: np.random.Generator) -> None:
    """C-MAPSS-shaped files whose sensors drift as each engine wears, like the real ones."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for unit in range(1, units + 1):
        life = int(rng.integers(150, 260))
        for cycle in range(1, life + 1):
            wear = np.exp(-(life - cycle) / 40.0)
            sensors = 500 + rng.normal(0, 0.3, 21) + 8 * wear * np.linspace(-1, 1, 21)
            values = [unit, cycle, *rng.normal(0, 0.002, 2).round(4), 100.0, *sensors.round(2)]
            lines.append(" ".join(str(v) for v in values))
    (folder / "train_FD001.txt").write_text("\n".join(lines) + "\n")


def test_the_command_line_trains_on_cmapss_files_with_rul_in_cycles(tmp_path: Path) -> None:
    _write_cmapss(tmp_path / "cmapss", 12, np.random.default_rng(0))
    result = subprocess.run(
        [sys.executable, "-m", "edgefleet", "train", "pdm", "--data", str(tmp_path / "cmapss"),
         "--epochs", "4", "--out", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["rul"] == {"cap": 125.0, "unit": "cycles"}
    assert run["labels"] == ["healthy", "degrading", "failing"]
    assert run["preprocessing"]["window_length"] == 30
    assert "rul_rmse" in result.stdout

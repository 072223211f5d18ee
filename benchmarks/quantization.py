"""Quantization figures for both reference models: int8 and fp16 against fp32, ONNX and TFLite side by side.

Size, latency (batch 1, one thread, median of repeated runs on the device backends) and held-out
accuracy, all measured in one run; fp32 of the same format is the baseline of each ratio.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from edgefleet.manifest import ArtifactFormat, Precision
from edgefleet.preprocess import prepare_inputs
from export import ExportOptions, ExportReport, export_run
from export.measure import measure_latency_ms
from train import PdmConfig, VisionConfig, load_run, train_pdm, train_vision

__all__ = ["run"]

_REPEATS = 5
_RUNS = 300
_PRECISIONS = (Precision.FP32, Precision.FP16, Precision.INT8)


def _rows(model: str, run_dir: Path, export_dir: Path, report: ExportReport) -> list[str]:
    import numpy as np

    run = load_run(run_dir)
    with np.load(run_dir / run.calibration) as data:
        sample = prepare_inputs(data["held_out_inputs"][:1], run.preprocessing)
    by_kind = {(a.format, a.precision): a for a in report.artifacts}
    rows = []
    for fmt in (ArtifactFormat.ONNX, ArtifactFormat.TFLITE):
        latency = {
            p: statistics.median(
                measure_latency_ms(fmt, export_dir / by_kind[fmt, p].path, sample, _RUNS)[0] for _ in range(_REPEATS)
            )
            for p in _PRECISIONS
        }
        base = by_kind[fmt, Precision.FP32]
        for precision in (Precision.FP16, Precision.INT8):
            a = by_kind[fmt, precision]
            rows.append(
                f"| {model} | {fmt} {precision} | {a.size_bytes:,} B / {base.size_bytes:,} B = "
                f"**{a.size_bytes / base.size_bytes:.3f}** | {latency[precision]:.4f} / {latency[Precision.FP32]:.4f} ms "
                f"= **{latency[precision] / latency[Precision.FP32]:.2f}** | {report.float_accuracy:.4f} → "
                f"{a.accuracy:.4f} (**{100 * a.accuracy_drop:+.2f}** pt) | {'passed' if a.passed else 'FAILED'} |"
            )
    return rows


def run() -> str:
    """Measure, and return the Markdown section for BENCHMARKS.md."""
    options = ExportOptions(precisions=_PRECISIONS)
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        train_pdm(PdmConfig(), tmp / "pdm")
        rows += _rows(
            "sensor CNN", tmp / "pdm", tmp / "pdm-export", export_run(tmp / "pdm", tmp / "pdm-export", options)
        )
        train_vision(VisionConfig(), tmp / "vision")
        report = export_run(tmp / "vision", tmp / "vision-export", options)
        rows += _rows("image CNN (64×64, width 0.5)", tmp / "vision", tmp / "vision-export", report)
    return (
        "## Export: quantized against fp32, ONNX and TFLite (goals: int8 size ≤ 0.30, accuracy drop ≤ 0.5 pt)\n\n"
        f"Latency: batch 1, one thread, median of {_REPEATS}×{_RUNS} runs on the agent's backends (onnxruntime, "
        "ai-edge-litert). Accuracy: held-out set, float model (PyTorch) → artifact.\n\n"
        "| model | artifact | size ratio | latency ratio | accuracy (drop) | gates |\n"
        "| --- | --- | ---: | ---: | ---: | --- |\n" + "\n".join(rows) + "\n"
    )

"""Package build and verify time, and ONNX fp32 against int8 (latency and size), measured in one run."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from edgefleet.package import verify_package
from edgefleet.preprocess import prepare_inputs
from edgefleet.signing import generate_keys, load_public_keys
from export import ExportOptions, export_run
from export.evaluate import measure_latency_ms
from export.packaging import package_export
from train import PdmConfig, load_run, train_pdm

__all__ = ["run"]

_REPEATS = 5


def _median_s(action: Callable[[], object], repeats: int = _REPEATS) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run() -> str:
    """Measure, and return the Markdown section for BENCHMARKS.md."""
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        train_pdm(PdmConfig(), tmp / "run")
        report = export_run(tmp / "run", tmp / "export", ExportOptions())
        private_key, public_key = generate_keys(tmp / "keys")
        trusted = load_public_keys([public_key])
        package = tmp / "model.efpkg"
        build_s = _median_s(lambda: package_export(tmp / "export", key=private_key, version="1.0.0", out=package))
        verify_s = _median_s(lambda: verify_package(package, trusted))
        by_precision = {a.precision.value: a for a in report.artifacts}
        held = _sample_input(tmp)
        latency = {
            precision: statistics.median(
                measure_latency_ms(tmp / "export" / a.path, held, runs=300)[0] for _ in range(_REPEATS)
            )
            for precision, a in by_precision.items()
        }
    fp32, int8 = by_precision["fp32"], by_precision["int8"]
    rows = [
        "| measure | fp32 (baseline) | int8 | ratio int8 / fp32 |",
        "| --- | ---: | ---: | ---: |",
        f"| ONNX file size | {fp32.size_bytes:,} B | {int8.size_bytes:,} B | {int8.size_bytes / fp32.size_bytes:.2f} |",
        f"| latency, batch 1, 1 thread, median of {_REPEATS}×300 | {latency['fp32']:.4f} ms | "
        f"{latency['int8']:.4f} ms | {latency['int8'] / latency['fp32']:.2f} |",
        f"| held-out accuracy | {fp32.accuracy:.3f} | {int8.accuracy:.3f} | drop {fp32.accuracy - int8.accuracy:+.3f} |",
        "",
        "| package operation | median of 5 |",
        "| --- | ---: |",
        f"| build and sign (fp32 + int8, {fp32.size_bytes + int8.size_bytes:,} B of models) | {build_s * 1000:.1f} ms |",
        f"| verify (archive, signature, manifest, every hash) | {verify_s * 1000:.1f} ms |",
    ]
    return "## Foundation: package and ONNX fp32 vs int8 (sensor CNN)\n\n" + "\n".join(rows) + "\n"


def _sample_input(tmp: Path) -> npt.NDArray[np.float32]:
    run = load_run(tmp / "run")
    with np.load(tmp / "run" / run.calibration) as data:
        return prepare_inputs(data["held_out_inputs"][:1], run.preprocessing)

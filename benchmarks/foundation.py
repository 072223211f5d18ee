"""Package build and verify time, medians of repeated runs."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from edgefleet.package import verify_package
from edgefleet.signing import generate_keys, load_public_keys
from export import ExportOptions, export_run
from export.packaging import package_export
from train import PdmConfig, train_pdm

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
    models = sum(a.size_bytes for a in report.artifacts)
    rows = [
        f"| package operation ({len(report.artifacts)} artifacts, {models:,} B of models) | median of {_REPEATS} |",
        "| --- | ---: |",
        f"| build and sign | {build_s * 1000:.1f} ms |",
        f"| verify (archive, signature, manifest, every hash) | {verify_s * 1000:.1f} ms |",
    ]
    return "## Foundation: signed packages (sensor CNN)\n\n" + "\n".join(rows) + "\n"

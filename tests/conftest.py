"""Session fixtures shared across the suite: one trained, exported and signed model package."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Pipeline:
    run: Path
    export: Path
    private_key: Path
    public_key: Path
    package: Path


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    """A small sensor model trained, exported (fp32, int8) and packaged once for the whole session."""
    from edgefleet.signing import generate_keys
    from export import ExportOptions, export_run
    from export.packaging import package_export
    from train import PdmConfig, train_pdm

    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    root = tmp_path_factory.mktemp("pipeline")
    train_pdm(PdmConfig(), root / "run")
    export_run(root / "run", root / "export", ExportOptions(latency_runs=20))
    private_key, public_key = generate_keys(root / "keys")
    package = package_export(root / "export", key=private_key, version="1.0.0", out=root / "pump-1.0.0.efpkg")
    return Pipeline(root / "run", root / "export", private_key, public_key, package)

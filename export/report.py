"""The export report (``export.json``): each artifact's figures and gates, and what the package needs."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from edgefleet.manifest import (
    ArtifactFormat,
    LatencyEstimate,
    Precision,
    Preprocessing,
    ReferenceProfile,
    TensorSpec,
    TestVectors,
)
from export.gates import GateResult

__all__ = ["REPORT_FILE", "ArtifactReport", "ExportReport"]

REPORT_FILE = "export.json"


class ArtifactReport(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str
    format: ArtifactFormat
    precision: Precision
    runtime: str
    size_bytes: int
    latency_p50_ms: float
    latency_p95_ms: float
    max_abs_diff: float
    top1_agreement: float
    accuracy: float
    macro_f1: float
    accuracy_drop: float
    rul_rmse: float | None = None
    gates: list[GateResult]

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)


class ExportReport(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[2] = 2
    name: str
    labels: list[str]
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    preprocessing: Preprocessing
    reference_metrics: dict[str, float]
    float_accuracy: float
    reference_profile: ReferenceProfile
    test_vectors: TestVectors
    artifacts: list[ArtifactReport]
    calibration_ms: float
    compatible_profiles: list[str]
    latency_estimates: list[LatencyEstimate]

    @property
    def failed(self) -> list[ArtifactReport]:
        """The artifacts that missed a gate."""
        return [a for a in self.artifacts if not a.passed]

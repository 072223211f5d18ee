"""The export report (``export.json``): each artifact's figures, and what the package needs from the run."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from edgefleet.manifest import (
    ArtifactFormat,
    Precision,
    Preprocessing,
    ReferenceProfile,
    TensorSpec,
    TestVectors,
)

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


class ExportReport(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = 1
    name: str
    labels: list[str]
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    preprocessing: Preprocessing
    reference_metrics: dict[str, float]
    reference_profile: ReferenceProfile
    test_vectors: TestVectors
    artifacts: list[ArtifactReport]

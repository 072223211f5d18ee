"""Export: ONNX and TFLite artifacts, quantization, parity and accuracy gates, test vectors, the signed package."""

from __future__ import annotations

from export.pipeline import ExportOptions, export_run
from export.report import ArtifactReport, ExportReport

__all__ = ["ArtifactReport", "ExportOptions", "ExportReport", "export_run"]

"""Inference backends behind one Protocol, and the choice of artifact a device runs."""

from __future__ import annotations

from edge_agent.backends._protocol import Backend
from edge_agent.backends.onnx import OnnxBackend
from edgefleet.manifest import Artifact, ArtifactFormat, Manifest, Precision

__all__ = ["PREFERENCE", "Backend", "OnnxBackend", "choose_artifact"]

# what a device prefers to run, best first: int8 is smallest and fastest on CPUs
PREFERENCE: tuple[tuple[ArtifactFormat, Precision], ...] = (
    (ArtifactFormat.ONNX, Precision.INT8),
    (ArtifactFormat.ONNX, Precision.FP32),
    (ArtifactFormat.ONNX, Precision.FP16),
)


def choose_artifact(manifest: Manifest) -> Artifact | None:
    """The artifact of ``manifest`` this agent runs best, or None when it can run none of them."""
    by_kind = {(a.format, a.precision): a for a in manifest.artifacts}
    return next((by_kind[kind] for kind in PREFERENCE if kind in by_kind), None)

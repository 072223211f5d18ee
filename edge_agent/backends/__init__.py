"""Inference backends behind one Protocol, and the choice of artifact a device runs."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from edge_agent.backends._protocol import Backend, BackendLoader
from edgefleet.errors import AgentError
from edgefleet.manifest import Artifact, ArtifactFormat, Manifest, Precision

__all__ = [
    "LOADERS",
    "PREFERENCE",
    "Backend",
    "BackendLoader",
    "choose_artifact",
    "installed_formats",
    "load_backend",
]


def _onnx(path: Path, threads: int) -> Backend:
    # imported on use: a device image may carry only one of the runtimes
    from edge_agent.backends.onnx import OnnxBackend

    return OnnxBackend(path, threads)


def _litert(path: Path, threads: int) -> Backend:
    from edge_agent.backends.litert import LiteRtBackend

    return LiteRtBackend(path, threads)


# the runtime that loads each artifact format
LOADERS: Final[Mapping[ArtifactFormat, BackendLoader]] = {ArtifactFormat.ONNX: _onnx, ArtifactFormat.TFLITE: _litert}

# what a device prefers to run, best first: int8 is smallest and fastest on CPUs; fp16 is last because on
# CPUs it only shrinks the file, the runtimes compute it in fp32 anyway
PREFERENCE: Final[tuple[tuple[ArtifactFormat, Precision], ...]] = (
    (ArtifactFormat.ONNX, Precision.INT8),
    (ArtifactFormat.TFLITE, Precision.INT8),
    (ArtifactFormat.ONNX, Precision.FP32),
    (ArtifactFormat.TFLITE, Precision.FP32),
    (ArtifactFormat.ONNX, Precision.FP16),
    (ArtifactFormat.TFLITE, Precision.FP16),
)


# the module each format's runtime is imported from, any one of them suffices
_RUNTIME_MODULES: Final[Mapping[ArtifactFormat, tuple[str, ...]]] = {
    ArtifactFormat.ONNX: ("onnxruntime",),
    ArtifactFormat.TFLITE: ("ai_edge_litert", "tflite_runtime"),
}


def installed_formats() -> frozenset[ArtifactFormat]:
    """The artifact formats whose runtime is installed on this device (a device image may carry only one)."""
    return frozenset(
        fmt for fmt, modules in _RUNTIME_MODULES.items() if any(importlib.util.find_spec(m) for m in modules)
    )


def choose_artifact(manifest: Manifest, formats: frozenset[ArtifactFormat] | None = None) -> Artifact | None:
    """The artifact of ``manifest`` this agent runs best among ``formats`` (default: the installed runtimes'),
    or None when it can run none of them."""
    usable = installed_formats() if formats is None else formats
    by_kind = {(a.format, a.precision): a for a in manifest.artifacts if a.format in usable}
    return next((by_kind[kind] for kind in PREFERENCE if kind in by_kind), None)


def load_backend(artifact: Artifact, path: Path, threads: int) -> Backend:
    """Load ``artifact`` from ``path`` on its runtime; raises AgentError when this agent has none for it."""
    loader = LOADERS.get(artifact.format)
    if loader is None:
        raise AgentError(
            f"this agent has no runtime for {artifact.format} artifacts ({artifact.path})",
            hint=f"export the model to one of: {', '.join(sorted(LOADERS))}",
        )
    return loader(path, threads)

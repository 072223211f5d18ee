"""Inference backends behind one Protocol, and the choice of artifact a device runs."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

from edge_agent.backends._protocol import Backend, BackendLoader
from edgefleet.errors import AgentError
from edgefleet.manifest import Artifact, ArtifactFormat, Manifest, Precision
from edgefleet.profile import RuntimeName

__all__ = [
    "DEFAULT_RUNTIMES",
    "LOADERS",
    "PRECISIONS",
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

# what a device prefers to run: int8 is smallest and fastest on CPUs; fp16 is last because on CPUs it only
# shrinks the file, the runtimes compute it in fp32 anyway
PRECISIONS: Final[tuple[Precision, ...]] = (Precision.INT8, Precision.FP32, Precision.FP16)
# with no device profile to say otherwise, ONNX first: onnxruntime is the runtime most device images carry
DEFAULT_RUNTIMES: Final[tuple[RuntimeName, ...]] = ("onnxruntime", "litert", "tflite-runtime")

# the artifact format each runtime loads and the module it is imported from
_RUNTIMES: Final[Mapping[RuntimeName, tuple[ArtifactFormat, str]]] = {
    "onnxruntime": (ArtifactFormat.ONNX, "onnxruntime"),
    "litert": (ArtifactFormat.TFLITE, "ai_edge_litert"),
    "tflite-runtime": (ArtifactFormat.TFLITE, "tflite_runtime"),
}


def installed_formats(runtimes: Sequence[RuntimeName] = DEFAULT_RUNTIMES) -> tuple[ArtifactFormat, ...]:
    """The artifact formats this device runs, best first: those of ``runtimes`` (the device profile's, in its
    order) whose runtime is installed here. A device image may carry only one runtime; mobile runtimes
    (coreml, executorch) take bundles, not packages, and count for nothing here."""
    formats: list[ArtifactFormat] = []
    for runtime in runtimes:
        if runtime not in _RUNTIMES:
            continue
        fmt, module = _RUNTIMES[runtime]
        if fmt not in formats and importlib.util.find_spec(module) is not None:
            formats.append(fmt)
    return tuple(formats)


def choose_artifact(manifest: Manifest, formats: Sequence[ArtifactFormat] | None = None) -> Artifact | None:
    """The artifact of ``manifest`` this agent runs best, or None when it can run none of them.

    ``formats`` are the formats it can run, best first (default: ``installed_formats()``); precision counts
    before format, so an int8 model on the second runtime beats an fp32 one on the first.
    """
    usable = installed_formats() if formats is None else tuple(formats)
    by_kind = {(a.format, a.precision): a for a in manifest.artifacts if a.format in usable}
    return next((by_kind[(f, p)] for p in PRECISIONS for f in usable if (f, p) in by_kind), None)


def load_backend(artifact: Artifact, path: Path, threads: int) -> Backend:
    """Load ``artifact`` from ``path`` on its runtime; raises AgentError when this agent has none for it."""
    loader = LOADERS.get(artifact.format)
    if loader is None:
        raise AgentError(
            f"this agent has no runtime for {artifact.format} artifacts ({artifact.path})",
            hint=f"export the model to one of: {', '.join(sorted(LOADERS))}",
        )
    return loader(path, threads)

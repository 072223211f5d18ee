"""Build a signed package from a model made elsewhere: its own tensors, the spec's meaning, evidence from running it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

from edge_agent.backends import LOADERS, Backend
from edgefleet.errors import AgentError, InputError, UnsupportedModelError
from edgefleet.manifest import ArtifactFormat, DType, Manifest, SensorPreprocessing, TensorSpec
from edgefleet.package import build_package, describe_artifact
from edgefleet.semver import parse_semver
from edgefleet.signing import load_private_key
from export.gates import SMOKE_ATOL
from export.importing.agreement import check_inputs, check_outputs, sample_shape
from export.importing.inspect_model import INSPECTORS, ModelInfo
from export.importing.runs import model_inputs, run_model
from export.importing.spec import ImportSpec, load_spec
from export.importing.vectors import make_reference_profile, make_test_vectors
from export.packaging import new_manifest

__all__ = ["ImportRequest", "import_model"]

_RUNTIME: Final = {ArtifactFormat.ONNX: "onnxruntime>=1.17", ArtifactFormat.TFLITE: "ai-edge-litert>=2.3"}
_RUN_BATCH: Final = 64


@dataclass(frozen=True, slots=True)
class ImportRequest:
    model: Path
    format: ArtifactFormat
    spec: Path
    key: Path
    version: str
    out: Path


def import_model(request: ImportRequest) -> Manifest:
    """Inspect, check and run the model, then sign its package to ``request.out``; returns the manifest.

    The model runs on the edge agent's own backends, so the expected outputs come from the very code the
    device's smoke test runs. Raises InputError for a bad file, spec, samples, key or version, and
    UnsupportedModelError for a model the agent cannot run, before anything is written.
    """
    try:
        parse_semver(request.version)
    except ValueError as err:
        raise InputError(str(err), hint="pass --version as X.Y.Z, e.g. 1.0.0") from err
    spec = load_spec(request.spec)
    private_key = load_private_key(request.key)
    info = INSPECTORS[request.format](request.model)
    model_input = check_inputs(info, spec)
    backend = _load(request.format, request.model)
    # an ONNX graph with a fixed batch of one takes one input per call, and so does its smoke test
    max_batch = _RUN_BATCH if info.any_batch else 1
    inputs = model_inputs(spec, sample_shape(spec))
    outputs = run_model(backend, model_input.name, inputs.batch, max_batch)
    check_outputs(outputs, spec)

    precision = spec.precision or info.precision
    artifact_path = f"{spec.name}-{precision}.{request.format}"
    artifact = describe_artifact(
        artifact_path, request.model, format=request.format, precision=precision, runtime=_RUNTIME[request.format]
    )
    vectors = make_test_vectors(
        backend,
        model_input.name,
        inputs.batch[: min(spec.test_vectors, max_batch)],
        artifact_path,
        atol=spec.atol if spec.atol is not None else SMOKE_ATOL[precision],
    )
    manifest = new_manifest(
        hint="check the spec against docs/import.md",
        name=spec.name,
        version=request.version,
        task=spec.task,
        description=spec.description,
        inputs=[_input_spec(info, model_input.name, spec)],
        outputs=[
            TensorSpec(name=name, shape=[_batch_axis(info), *values.shape[1:]], dtype=DType.FLOAT32)
            for name, values in outputs.items()
        ],
        labels=spec.labels,
        preprocessing=spec.preprocessing,
        artifacts=[artifact],
        reference_profile=None if inputs.raw is None else make_reference_profile(inputs.raw, outputs, spec),
        test_vectors=vectors,
        compatible_profiles=spec.compatible_profiles,
    )
    build_package(manifest, {artifact_path: request.model}, private_key, request.out)
    return manifest


def _load(fmt: ArtifactFormat, model: Path) -> Backend:
    try:
        return LOADERS[fmt](model, 1)
    except AgentError as err:  # on a device this stops the agent (exit 1); here the user's model is the input
        raise UnsupportedModelError(
            f"the runtime cannot load {model}: {err.message}", hint="pass a model file that is complete and valid"
        ) from err


def _batch_axis(info: ModelInfo) -> int | None:
    return None if info.any_batch else 1


def _input_spec(info: ModelInfo, name: str, spec: ImportSpec) -> TensorSpec:
    # the device feeds float32, whatever the model computes in: LiteRT's backend quantizes int8 inputs itself
    layout = "NCW" if isinstance(spec.preprocessing, SensorPreprocessing) else "NCHW"
    return TensorSpec(name=name, shape=[_batch_axis(info), *sample_shape(spec)], dtype=DType.FLOAT32, layout=layout)

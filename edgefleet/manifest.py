"""The model package manifest (schema ``ef.manifest.v1``): what a package holds and how to run it."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, model_validator

from edgefleet._contract import Contract
from edgefleet.ids import ModelName, RelPath, Sha256Hex
from edgefleet.semver import SemVerStr

__all__ = [
    "Artifact",
    "ArtifactFormat",
    "ChannelSpec",
    "DType",
    "ExpectedOutputs",
    "FeatureReference",
    "Histogram",
    "ImagePreprocessing",
    "LatencyEstimate",
    "Manifest",
    "Metrics",
    "Precision",
    "Preprocessing",
    "ReferenceProfile",
    "SensorPreprocessing",
    "Task",
    "TensorData",
    "TensorSpec",
    "TestVectors",
]


class Task(StrEnum):
    CLASSIFICATION = "classification"
    REGRESSION = "regression"
    ANOMALY = "anomaly"


class DType(StrEnum):
    FLOAT32 = "float32"
    FLOAT16 = "float16"
    INT8 = "int8"
    UINT8 = "uint8"


class ArtifactFormat(StrEnum):
    ONNX = "onnx"
    TFLITE = "tflite"
    ORT = "ort"


class Precision(StrEnum):
    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"


class TensorSpec(Contract):
    """One model input or output as the device sees it; ``None`` in ``shape`` is a free (batch) axis."""

    name: str = Field(min_length=1, max_length=128)
    shape: list[PositiveInt | None] = Field(min_length=1, max_length=8)
    dtype: DType
    layout: str = Field(default="", max_length=16, description="e.g. NCW for sensor windows, NCHW for images")


class ChannelSpec(Contract):
    name: str = Field(min_length=1, max_length=64)
    unit: str = Field(default="", max_length=32)
    mean: float = Field(description="subtracted before inference (fitted on the training split)")
    std: PositiveFloat = Field(description="divided by after the mean is subtracted")


class SensorPreprocessing(Contract):
    kind: Literal["sensor"] = "sensor"
    channels: list[ChannelSpec] = Field(min_length=1, max_length=64)
    window_length: PositiveInt
    sample_rate_hz: PositiveFloat


class ImagePreprocessing(Contract):
    kind: Literal["image"] = "image"
    height: PositiveInt
    width: PositiveInt
    colour_order: Literal["RGB", "BGR"] = "RGB"
    mean: tuple[float, float, float]
    std: tuple[PositiveFloat, PositiveFloat, PositiveFloat]


Preprocessing = Annotated[SensorPreprocessing | ImagePreprocessing, Field(discriminator="kind")]


class Artifact(Contract):
    """A model file inside the package; its hash and size are what the signature covers."""

    path: RelPath
    format: ArtifactFormat
    precision: Precision
    runtime: str = Field(description="the runtime and lowest version that loads it, e.g. onnxruntime>=1.17")
    sha256: Sha256Hex
    size_bytes: NonNegativeInt


class Histogram(Contract):
    """Counts between consecutive edges; the first and last bins also take what falls outside."""

    edges: list[float] = Field(min_length=2, max_length=1025)
    counts: list[NonNegativeInt]

    @model_validator(mode="after")
    def _bins_match_edges(self) -> Histogram:
        if len(self.counts) != len(self.edges) - 1:
            raise ValueError(f"{len(self.edges)} edges need {len(self.edges) - 1} counts, got {len(self.counts)}")
        if any(b < a for a, b in zip(self.edges, self.edges[1:], strict=False)):
            raise ValueError("histogram edges must not decrease")
        return self


class FeatureReference(Contract):
    """Reference bins of one input feature; devices count live data into the same bins."""

    name: str = Field(min_length=1, max_length=64)
    histogram: Histogram
    effective_count: float | None = Field(
        default=None,
        gt=0,
        description="independent values the counts are worth: fewer than the count when values come in correlated "
        "groups (windows of one recording); the server's drift statistics use it, None: every value independent",
    )


class ReferenceProfile(Contract):
    sample_count: NonNegativeInt
    features: list[FeatureReference] = Field(max_length=512)
    class_counts: list[NonNegativeInt] = Field(default_factory=list, description="aligned with the labels")
    confidence: Histogram | None = None


class TensorData(Contract):
    """A small array inline: little-endian raw bytes in base64, with dtype and shape."""

    dtype: DType
    shape: list[NonNegativeInt] = Field(max_length=8)
    data_b64: str = Field(max_length=4_000_000)


class ExpectedOutputs(Contract):
    atol: float = Field(ge=0, description="largest absolute difference the smoke test accepts")
    outputs: dict[str, TensorData]


class TestVectors(Contract):
    """Inputs with each artifact's expected outputs, for the on-device smoke test."""

    __test__ = False  # not a pytest test class, whatever its name says

    inputs: dict[str, TensorData]
    expected: dict[RelPath, ExpectedOutputs]


class Metrics(Contract):
    """Quality on held-out data: the float reference, then each artifact by its path."""

    dataset: str = Field(default="held-out", max_length=256)
    reference: dict[str, float] = Field(default_factory=dict)
    artifacts: dict[RelPath, dict[str, float]] = Field(default_factory=dict)


class LatencyEstimate(Contract):
    """Expected single-thread latency of one artifact on one device profile: an estimate, not a measurement."""

    profile: str = Field(min_length=1, max_length=64)
    artifact: RelPath
    p50_ms: NonNegativeFloat
    p95_ms: NonNegativeFloat
    basis: str = Field(
        default="estimate: measured on the export machine, scaled by a calibration workload and the profile's "
        "latency_factor",
        max_length=256,
    )


class Manifest(Contract):
    schema_: Literal["ef.manifest.v1"] = Field(default="ef.manifest.v1", alias="schema")
    name: ModelName
    version: SemVerStr
    task: Task
    description: str = Field(default="", max_length=2000)
    created_at: str = Field(description="ISO 8601, UTC")
    inputs: list[TensorSpec] = Field(min_length=1, max_length=16)
    outputs: list[TensorSpec] = Field(min_length=1, max_length=16)
    labels: list[str] = Field(default_factory=list, max_length=10_000)
    preprocessing: Preprocessing
    artifacts: list[Artifact] = Field(min_length=1, max_length=32)
    metrics: Metrics = Field(default_factory=Metrics)
    reference_profile: ReferenceProfile | None = None
    test_vectors: TestVectors | None = None
    compatible_profiles: list[str] = Field(default_factory=list, description="empty: any device profile")
    latency_estimates: list[LatencyEstimate] = Field(default_factory=list, max_length=1024)
    min_agent_version: SemVerStr = "0.1.0"

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        paths = [a.path for a in self.artifacts]
        if len(set(paths)) != len(paths):
            raise ValueError("two artifacts share a path")
        if self.test_vectors is not None:
            unknown = set(self.test_vectors.expected) - set(paths)
            if unknown:
                raise ValueError(f"test vectors name artifacts the package does not hold: {sorted(unknown)}")
        if self.task is Task.CLASSIFICATION and not self.labels:
            raise ValueError("a classification model needs its labels")
        return self

    def artifact(self, path: str) -> Artifact:
        """The artifact at ``path``; raises KeyError when the package holds none there."""
        for artifact in self.artifacts:
            if artifact.path == path:
                return artifact
        raise KeyError(path)

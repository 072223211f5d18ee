"""The evidence a package carries about an imported model: test vectors, and a reference profile from samples."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from edge_agent.backends import Backend
from edgefleet.manifest import (
    ExpectedOutputs,
    FeatureReference,
    Histogram,
    ReferenceProfile,
    SensorPreprocessing,
    Task,
    TestVectors,
)
from edgefleet.sketch import CONFIDENCE_EDGES, count_into, image_features, reference_histogram, sensor_features
from edgefleet.tensors import encode_tensor
from export.importing.runs import run_model
from export.importing.spec import ImportSpec

__all__ = ["make_reference_profile", "make_test_vectors"]


def make_test_vectors(
    backend: Backend, input_name: str, inputs: npt.NDArray[np.float32], artifact_path: str, atol: float
) -> TestVectors:
    """``inputs`` with the outputs the model gives for them, fed as one batch exactly as the smoke test feeds them."""
    outputs = run_model(backend, input_name, inputs, max_batch=len(inputs))
    return TestVectors(
        inputs={input_name: encode_tensor(inputs)},
        expected={artifact_path: ExpectedOutputs(atol=atol, outputs={n: encode_tensor(v) for n, v in outputs.items()})},
    )


def make_reference_profile(
    raw: npt.NDArray[np.generic], outputs: Mapping[str, npt.NDArray[np.float32]], spec: ImportSpec
) -> ReferenceProfile:
    """Reference bins of the raw samples' features and, for a classifier, its predicted classes and confidence."""
    p = spec.preprocessing
    if isinstance(p, SensorPreprocessing):
        features = sensor_features(np.asarray(raw, dtype=np.float32), [c.name for c in p.channels])
    else:
        features = image_features(np.clip(np.asarray(raw), 0, 255).astype(np.uint8))
    references = [FeatureReference(name=n, histogram=reference_histogram(v)) for n, v in features.items()]
    if spec.task is not Task.CLASSIFICATION:
        return ReferenceProfile(sample_count=len(raw), features=references)
    probabilities = _probabilities(next(iter(outputs.values())))
    predicted = probabilities.argmax(axis=1)
    return ReferenceProfile(
        sample_count=len(raw),
        features=references,
        class_counts=[int(c) for c in np.bincount(predicted, minlength=len(spec.labels))],
        confidence=Histogram(
            edges=list(CONFIDENCE_EDGES), counts=count_into(CONFIDENCE_EDGES, probabilities.max(axis=1))
        ),
    )


def _probabilities(scores: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    # the agent's rule (edge_agent.agent.as_probabilities; that module needs paho-mqtt, which the export extra
    # lacks): distributions stay, logits are softmaxed, so the reference confidence is the one devices count
    rows = np.asarray(scores, dtype=np.float32)
    is_distribution = (rows.min(axis=1) >= 0.0) & (rows.max(axis=1) <= 1.0) & (np.abs(rows.sum(axis=1) - 1.0) < 0.05)
    shifted = np.exp(rows - rows.max(axis=1, keepdims=True))
    softmax = shifted / shifted.sum(axis=1, keepdims=True)
    return np.where(is_distribution[:, None], rows, softmax).astype(np.float32)

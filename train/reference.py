"""The reference profile drift checks compare live data against (DESIGN.md, "Drift")."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from edgefleet.manifest import FeatureReference, Histogram, ReferenceProfile
from edgefleet.sketch import CONFIDENCE_EDGES, count_into, reference_histogram

__all__ = ["build_reference_profile"]


def build_reference_profile(
    features: dict[str, npt.NDArray[np.float64]],
    labels: npt.NDArray[np.int64],
    held_out_probs: npt.NDArray[np.float32],
) -> ReferenceProfile:
    """Quantile bins per input feature and the class counts (training data), and the confidence histogram."""
    classes = held_out_probs.shape[1]
    return ReferenceProfile(
        sample_count=len(labels),
        features=[FeatureReference(name=n, histogram=reference_histogram(v)) for n, v in features.items()],
        class_counts=[int(c) for c in np.bincount(labels, minlength=classes)],
        confidence=Histogram(
            edges=list(CONFIDENCE_EDGES), counts=count_into(CONFIDENCE_EDGES, held_out_probs.max(axis=1))
        ),
    )

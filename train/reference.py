"""The reference profile drift checks compare live data against (DESIGN.md, "Drift").

The reference describes the model's **normal service**, not its training set: a fleet in good health mostly
sees the nominal class, and a reference built from the balanced training data (every fault class as often as
the normal one) makes a healthy fleet look drifted and its class mix alarm all the time. So:

- input features (quantile bins and counts): the nominal class's training windows or images, the class
  named one of NOMINAL_LABELS (normal, good, ok, healthy; case-insensitive). When no label is nominal, all
  training data, and ``ReferenceSource.nominal`` says so (the run reports it in its metrics and its log);
- class counts: the model's predicted classes on the nominal class's held-out data (what a healthy device's
  class mix looks like, including the model's own mistakes); without nominal held-out data, the labels of the
  training rows the features came from;
- confidence histogram: the model's confidences on all held-out data.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from edgefleet.manifest import FeatureReference, Histogram, ReferenceProfile
from edgefleet.sketch import CONFIDENCE_EDGES, count_into, effective_count, reference_histogram

__all__ = ["NOMINAL_LABELS", "ReferenceSource", "build_reference_profile", "nominal_label", "reference_source"]

log = logging.getLogger(__name__)

NOMINAL_LABELS: Final = ("normal", "good", "ok", "healthy")


def nominal_label(label_names: list[str]) -> int | None:
    """The index of the label that names normal service, or None when there is none."""
    for index, name in enumerate(label_names):
        if name.strip().lower() in NOMINAL_LABELS:
            return index
    return None


@dataclass(frozen=True, slots=True)
class ReferenceSource:
    """Which training and held-out rows the reference is built from."""

    train_rows: npt.NDArray[np.int64]  # positions in the training data: its input features
    held_rows: npt.NDArray[np.int64]  # positions in the held-out data: its predicted class counts
    nominal: bool  # False: no nominal label, all data used


def reference_source(
    label_names: list[str], train_labels: npt.NDArray[np.int64], held_labels: npt.NDArray[np.int64]
) -> ReferenceSource:
    """The nominal class's rows on both sides, or every row (logged) when no label is nominal or it has no data."""
    nominal = nominal_label(label_names)
    if nominal is not None:
        train_rows = np.flatnonzero(train_labels == nominal)
        held_rows = np.flatnonzero(held_labels == nominal)
        if len(train_rows):
            return ReferenceSource(train_rows, held_rows, True)
    log.warning(
        "train.reference_from_all_classes",
        extra={"labels": label_names, "nominal_labels": NOMINAL_LABELS},
    )
    return ReferenceSource(np.arange(len(train_labels)), np.arange(len(held_labels)), False)


def _feature(name: str, values: npt.NDArray[np.float64], groups: npt.NDArray[np.int64]) -> FeatureReference:
    histogram = reference_histogram(values)
    return FeatureReference(
        name=name, histogram=histogram, effective_count=effective_count(histogram.edges, values, groups)
    )


def build_reference_profile(
    features: dict[str, npt.NDArray[np.float64]],
    train_labels: npt.NDArray[np.int64],
    held_out_probs: npt.NDArray[np.float32],
    source: ReferenceSource,
    groups: npt.NDArray[np.int64],
) -> ReferenceProfile:
    """The profile under the rule in the module docstring.

    ``features`` are computed on the training rows of ``source`` already, ``groups`` are those rows' recordings
    (each feature's effective count: windows of one recording move together); ``train_labels`` and
    ``held_out_probs`` cover all training and held-out rows.
    """
    classes = held_out_probs.shape[1]
    if source.nominal and len(source.held_rows):
        predicted = held_out_probs[source.held_rows].argmax(axis=1)
    else:
        predicted = train_labels[source.train_rows]
    return ReferenceProfile(
        sample_count=len(source.train_rows),
        features=[_feature(name, values, groups) for name, values in features.items()],
        class_counts=[int(c) for c in np.bincount(predicted, minlength=classes)],
        confidence=Histogram(
            edges=list(CONFIDENCE_EDGES), counts=count_into(CONFIDENCE_EDGES, held_out_probs.max(axis=1))
        ),
    )

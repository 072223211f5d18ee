"""A package's reference profile laid out flat, so that telemetry sketches in its bins add up as one numpy vector.

Every telemetry interval becomes one row of counts: each feature's bins in the reference's order, then the
class counts, then the confidence bins. A sketch whose bins do not match the reference (another model
version, a feature the reference lacks) is left out, as zeros, rather than merged into the wrong bins.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
from pydantic import ValidationError
from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from edgefleet.manifest import ReferenceProfile
from edgefleet.sketch import CONFIDENCE_EDGES
from fleet_server.db.models import Package

__all__ = ["ModelKey", "Parts", "Reference", "load_references"]

T = TypeVar("T", bound=np.generic)
ModelKey = tuple[str, str]  # (model name, version): the package whose reference profile fixes the bins


@dataclass(frozen=True, slots=True)
class Reference:
    """One package's reference bins and counts, and where each part sits in a flat row of live counts."""

    package: str
    feature_names: tuple[str, ...]
    feature_edges: tuple[tuple[float, ...], ...]
    feature_bins: tuple[int, ...]
    padded: npt.NDArray[np.float64]  # (features, most bins): reference counts, short features padded with zeros
    labels: tuple[str, ...]
    class_counts: tuple[int, ...]
    confidence_edges: tuple[float, ...]
    confidence_counts: tuple[int, ...] | None
    # per feature: the reference's own dispersion φ (reference values per effective one; 1 when not recorded)
    dispersions: npt.NDArray[np.float64]

    @property
    def width(self) -> int:
        return sum(self.feature_bins) + len(self.class_counts) + len(self.confidence_edges) - 1

    @property
    def sample_bins(self) -> int:
        """Bins of the first feature (or, without features, the class counts): their sum is the sample count."""
        return self.feature_bins[0] if self.feature_bins else len(self.class_counts)

    def encode(self, counts: npt.NDArray[np.int64]) -> bytes:
        """A flat row as stored in the bucket table: little-endian int32."""
        return counts.astype("<i4").tobytes()

    def decode(self, blob: bytes) -> npt.NDArray[np.int64] | None:
        """A stored flat row back; None when its length is not this reference's (stored before a re-upload)."""
        if len(blob) != 4 * self.width:
            return None
        return np.frombuffer(blob, dtype="<i4").astype(np.int64)

    def encode_squares(self, squares: npt.NDArray[np.float64] | None) -> bytes | None:
        """``Tally.squares`` as stored next to the counts: little-endian float64; None stays None."""
        return None if squares is None else squares.astype("<f8").tobytes()

    def sum_squares(self, blobs: Sequence[bytes | None]) -> npt.NDArray[np.float64] | None:
        """Stored squares added up; None when any is missing or laid out for another reference."""
        if not blobs or any(b is None or len(b) != 8 * self.width for b in blobs):
            return None
        joined = np.frombuffer(b"".join(b for b in blobs if b is not None), dtype="<f8")
        return np.asarray(joined.reshape(len(blobs), self.width).sum(axis=0), dtype=np.float64)

    def flatten(self, payload: Mapping[str, Any]) -> list[int]:
        """One telemetry payload's counts laid out as this reference's flat row (mismatched parts as zeros)."""
        sketches = payload.get("sketches") or {}
        row: list[int] = []
        for name, bins in zip(self.feature_names, self.feature_bins, strict=True):
            counts = sketches.get(name)
            row += counts if counts is not None and len(counts) == bins else [0] * bins
        classes = payload.get("class_counts") or []
        row += classes if len(classes) == len(self.class_counts) else [0] * len(self.class_counts)
        confidence = payload.get("confidence_counts") or []
        bins = len(self.confidence_edges) - 1
        row += confidence if len(confidence) == bins else [0] * bins
        return row

    def squares(self, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        """Per flat bin, the sum over ``rows`` (intervals × width) of count² / the row's total in that part.

        Summed over intervals like the counts, this is what ``stats.dispersion`` needs to tell how much the
        intervals differ from each other (each feature, the classes and the confidence are one part each).
        """
        sizes = [*self.feature_bins, len(self.class_counts), len(self.confidence_edges) - 1]
        starts = np.cumsum([0, *sizes[:-1]])
        kept = [i for i, size in enumerate(sizes) if size > 0]
        totals = np.add.reduceat(rows, starts[kept], axis=1).astype(np.float64)
        per_bin = np.repeat(totals, [sizes[i] for i in kept], axis=1)
        values = rows.astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.asarray(np.where(per_bin > 0, values * values / np.where(per_bin > 0, per_bin, 1), 0.0).sum(0))

    def features(self, rows: npt.NDArray[T]) -> npt.NDArray[T]:
        """The feature part of flat rows (groups × width) as (groups, features, most bins), padded with zeros."""
        features = np.zeros((rows.shape[0], *self.padded.shape), dtype=rows.dtype)
        offset = 0
        for index, bins in enumerate(self.feature_bins):
            features[:, index, :bins] = rows[:, offset : offset + bins]
            offset += bins
        return features

    def unflatten(self, rows: npt.NDArray[np.int64]) -> Parts:
        """Summed flat rows (groups × width) split into padded features, classes and confidence counts."""
        features = self.features(rows)
        offset = sum(self.feature_bins)
        classes = rows[:, offset : offset + len(self.class_counts)]
        offset += len(self.class_counts)
        return Parts(features, classes, rows[:, offset:])


@dataclass(frozen=True, slots=True)
class Parts:
    features: npt.NDArray[np.int64]  # (groups, features, most bins)
    classes: npt.NDArray[np.int64]  # (groups, classes)
    confidence: npt.NDArray[np.int64]  # (groups, confidence bins)


def _reference(package: Package) -> Reference | None:
    raw = package.manifest.get("reference_profile")
    if raw is None:
        return None
    try:
        profile = ReferenceProfile.model_validate(raw)
    except ValidationError:
        return None  # the registry verified the manifest at upload; a profile it cannot read has no bins to trust
    bins = tuple(len(f.histogram.counts) for f in profile.features)
    padded = np.zeros((len(bins), max(bins, default=0)), dtype=np.float64)
    dispersions = np.ones(len(bins), dtype=np.float64)
    for index, feature in enumerate(profile.features):
        padded[index, : bins[index]] = feature.histogram.counts
        if feature.effective_count:
            dispersions[index] = max(1.0, sum(feature.histogram.counts) / feature.effective_count)
    labels = tuple(str(label) for label in package.manifest.get("labels") or [])
    class_counts = tuple(profile.class_counts) if len(profile.class_counts) == len(labels) else ()
    return Reference(
        package=f"{package.name}@{package.version}",
        feature_names=tuple(f.name for f in profile.features),
        feature_edges=tuple(tuple(f.histogram.edges) for f in profile.features),
        feature_bins=bins,
        padded=padded,
        labels=labels if class_counts else (),
        class_counts=class_counts,
        confidence_edges=tuple(profile.confidence.edges) if profile.confidence else CONFIDENCE_EDGES,
        confidence_counts=tuple(profile.confidence.counts) if profile.confidence else None,
        dispersions=dispersions,
    )


def load_references(session: Session, keys: Iterable[ModelKey]) -> dict[ModelKey, Reference | None]:
    """The reference of each (name, version) in the registry; None for a package missing or without a profile."""
    wanted = sorted(set(keys))
    found: dict[ModelKey, Reference | None] = dict.fromkeys(wanted)
    if wanted:
        packages = session.scalars(select(Package).where(tuple_(Package.name, Package.version).in_(wanted)))
        for package in packages:
            found[(package.name, package.version)] = _reference(package)
    return found

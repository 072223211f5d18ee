"""Aggregate one telemetry interval on the device into a TelemetryV1: counts, latency, classes, confidence, drift."""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from edgefleet.manifest import Manifest
from edgefleet.messages import ActiveModel, LatencyStats, SystemStats, TelemetryV1
from edgefleet.sketch import CONFIDENCE_EDGES, IMAGE_STATS, SENSOR_STATS, count_into, image_features, sensor_features

__all__ = ["DEFAULT_CONFIDENCE_EDGES", "IntervalAggregator", "Prediction", "ReportContext"]

DEFAULT_CONFIDENCE_EDGES: Final = CONFIDENCE_EDGES  # when a package brings no reference profile
# raw windows are kept only until this many are due for counting, so memory does not grow with the interval;
# images are counted in smaller batches because their features are computed in float64 (8 bytes a pixel value)
_SKETCH_BATCH: Final = 64
_IMAGE_SKETCH_BATCH: Final = 8


@dataclass(frozen=True, slots=True)
class Prediction:
    """What the model said about one window."""

    label: int
    confidence: float
    latency_ms: float


@dataclass(frozen=True, slots=True)
class ReportContext:
    """Who reports, about which model: the same for every interval of one agent run."""

    device_id: str
    model: ActiveModel | None


@dataclass(frozen=True, slots=True)
class _FeatureBins:
    name: str
    edges: npt.NDArray[np.float64]


class IntervalAggregator:
    """Counts what one interval saw; ``message`` turns it into a TelemetryV1, and a fresh one starts the next.

    Class, confidence and sketch counts are kept as counts (they merge by adding, on the server too);
    latencies are kept one float each, because exact percentiles need them.
    """

    def __init__(self, manifest: Manifest) -> None:
        reference = manifest.reference_profile
        self._class_counts = [0] * len(manifest.labels)
        confidence_edges = (
            reference.confidence.edges
            if reference is not None and reference.confidence is not None
            else DEFAULT_CONFIDENCE_EDGES
        )
        self._confidence_edges = np.asarray(confidence_edges, dtype=np.float64)
        self._confidence_counts = [0] * (len(confidence_edges) - 1)
        self._confidence_sum = 0.0
        self._channels: tuple[str, ...] = ()
        self._features: tuple[_FeatureBins, ...] = ()
        self._batch = _SKETCH_BATCH
        if reference is not None:
            if manifest.preprocessing.kind == "sensor":
                self._channels = tuple(c.name for c in manifest.preprocessing.channels)
                computable = {f"{c}.{stat}" for c in self._channels for stat in SENSOR_STATS}
            else:
                computable = set(IMAGE_STATS)
                self._batch = _IMAGE_SKETCH_BATCH
            # a reference feature the agent cannot compute (from a newer trainer) is left out, not sent as zeros
            self._features = tuple(
                _FeatureBins(f.name, np.asarray(f.histogram.edges, dtype=np.float64))
                for f in reference.features
                if f.name in computable
            )
        self._sketches = {f.name: [0] * (f.edges.size - 1) for f in self._features}
        self._pending: list[npt.NDArray[np.generic]] = []
        self._latencies_ms = array("d")
        self.errors = 0
        self.drops = 0

    @property
    def inference_count(self) -> int:
        return len(self._latencies_ms)

    def add(self, window: npt.NDArray[np.generic], prediction: Prediction) -> None:
        """Count one inference on one raw input (a sensor window (channels, length), or an image)."""
        self._latencies_ms.append(prediction.latency_ms)
        if 0 <= prediction.label < len(self._class_counts):
            self._class_counts[prediction.label] += 1
        index = int(np.searchsorted(self._confidence_edges[1:-1], prediction.confidence, side="right"))
        self._confidence_counts[index] += 1
        self._confidence_sum += min(max(prediction.confidence, 0.0), 1.0)
        if self._features:
            self._pending.append(window)
            if len(self._pending) >= self._batch:
                self._count_pending()

    def message(
        self, context: ReportContext, *, seq: int, ts: float, interval_s: float, system: SystemStats
    ) -> TelemetryV1:
        """The interval as one telemetry message."""
        self._count_pending()
        latency = None
        if self._latencies_ms:
            p50, p95 = np.percentile(np.frombuffer(self._latencies_ms, dtype=np.float64), [50, 95])
            latency = LatencyStats(p50_ms=float(p50), p95_ms=float(p95), max_ms=max(self._latencies_ms))
        return TelemetryV1(
            device_id=context.device_id,
            seq=seq,
            ts=ts,
            interval_s=interval_s,
            model=context.model,
            inference_count=self.inference_count,
            error_count=self.errors,
            drop_count=self.drops,
            latency=latency,
            class_counts=list(self._class_counts),
            confidence_counts=list(self._confidence_counts),
            confidence_sum=self._confidence_sum if self._latencies_ms else None,
            sketches={name: list(counts) for name, counts in self._sketches.items()},
            system=system,
        )

    def _count_pending(self) -> None:
        if not self._pending:
            return
        batch = np.stack(self._pending)
        # images reach ``add`` as the model's raw input, (height, width, 3) RGB uint8; sensor windows as (C, L)
        values = image_features(batch) if not self._channels else sensor_features(batch, self._channels)
        self._pending.clear()
        for feature in self._features:
            counts = count_into(feature.edges, values[feature.name])
            self._sketches[feature.name] = [a + b for a, b in zip(self._sketches[feature.name], counts, strict=True)]

"""Aggregate one telemetry interval on the device: counts, latency, classes, confidence and drift sketches."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from edgefleet.manifest import Manifest
from edgefleet.messages import ActiveModel, LatencyStats, SystemStats, TelemetryV1
from edgefleet.sketch import count_into, sensor_features

__all__ = ["DEFAULT_CONFIDENCE_EDGES", "IntervalStats"]

DEFAULT_CONFIDENCE_EDGES = tuple(round(0.1 * i, 1) for i in range(11))


@dataclass(slots=True)
class IntervalStats:
    """What one interval saw; ``message`` turns it into a TelemetryV1, and a fresh one starts the next."""

    manifest: Manifest
    latencies_ms: list[float] = field(default_factory=list)
    predictions: list[int] = field(default_factory=list)
    confidences: list[float] = field(default_factory=list)
    windows: list[npt.NDArray[np.float32]] = field(default_factory=list)
    errors: int = 0
    drops: int = 0

    def add(self, window: npt.NDArray[np.float32], probabilities: npt.NDArray[np.float32], latency_ms: float) -> None:
        """Count one inference on one raw window."""
        self.latencies_ms.append(latency_ms)
        self.predictions.append(int(probabilities.argmax()))
        self.confidences.append(float(probabilities.max()))
        self.windows.append(window)

    def message(
        self, device_id: str, seq: int, ts: float, interval_s: float, model: ActiveModel | None, system: SystemStats
    ) -> TelemetryV1:
        """The interval as one telemetry message."""
        latency = None
        if self.latencies_ms:
            p50, p95 = np.percentile(self.latencies_ms, [50, 95])
            latency = LatencyStats(p50_ms=float(p50), p95_ms=float(p95), max_ms=max(self.latencies_ms))
        return TelemetryV1(
            device_id=device_id,
            seq=seq,
            ts=ts,
            interval_s=interval_s,
            model=model,
            inference_count=len(self.latencies_ms),
            error_count=self.errors,
            drop_count=self.drops,
            latency=latency,
            class_counts=[int(c) for c in np.bincount(self.predictions, minlength=len(self.manifest.labels))],
            confidence_counts=count_into(self._confidence_edges(), self.confidences),
            sketches=self._sketches(),
            system=system,
        )

    def _confidence_edges(self) -> list[float]:
        reference = self.manifest.reference_profile
        if reference is not None and reference.confidence is not None:
            return reference.confidence.edges
        return list(DEFAULT_CONFIDENCE_EDGES)

    def _sketches(self) -> dict[str, list[int]]:
        reference = self.manifest.reference_profile
        preprocessing = self.manifest.preprocessing
        if reference is None or not self.windows or preprocessing.kind != "sensor":
            return {}
        values = sensor_features(np.stack(self.windows), [c.name for c in preprocessing.channels])
        return {f.name: count_into(f.histogram.edges, values[f.name]) for f in reference.features if f.name in values}

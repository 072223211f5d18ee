"""Drift sketches: the features counted on inputs (sensor windows, images), and counting them into bins.

Training fixes the bin edges (quantiles of the reference data); devices count live values into the same
bins, so sketches from many devices and intervals merge by adding counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

from edgefleet.manifest import Histogram

__all__ = ["CONFIDENCE_EDGES", "count_into", "image_features", "reference_histogram", "sensor_features"]

# the bins of the confidence histogram: the reference profile, the device and the server count into the same ten
CONFIDENCE_EDGES: Final = tuple(round(0.1 * i, 1) for i in range(11))


def sensor_features(
    windows: npt.NDArray[np.floating], channel_names: Sequence[str]
) -> dict[str, npt.NDArray[np.float64]]:
    """Per channel, each window's mean and RMS about the mean (raw units); windows shaped (N, C, L)."""
    features: dict[str, npt.NDArray[np.float64]] = {}
    mean = windows.mean(axis=2, dtype=np.float64)
    rms = windows.std(axis=2, dtype=np.float64)
    for index, name in enumerate(channel_names):
        features[f"{name}.mean"] = mean[:, index]
        features[f"{name}.rms"] = rms[:, index]
    return features


def reference_histogram(values: npt.ArrayLike, bins: int = 10) -> Histogram:
    """Bins with edges at the quantiles of ``values`` (equal reference counts), and those counts."""
    data = np.asarray(values, dtype=np.float64)
    edges = np.unique(np.quantile(data, np.linspace(0.0, 1.0, bins + 1)))
    if edges.size < 2:
        # a constant feature: one bin around its value
        edges = np.asarray([edges[0] - 0.5, edges[0] + 0.5])
    return Histogram(edges=[float(e) for e in edges], counts=count_into(edges, data))


def count_into(edges: Sequence[float] | npt.NDArray[np.float64], values: npt.ArrayLike) -> list[int]:
    """Counts of ``values`` in the bins between ``edges``; the outer bins take what falls outside."""
    edge_array = np.asarray(edges, dtype=np.float64)
    inner = edge_array[1:-1]
    index = np.searchsorted(inner, np.asarray(values, dtype=np.float64).ravel(), side="right")
    return [int(c) for c in np.bincount(index, minlength=edge_array.size - 1)]


def image_features(images: npt.NDArray[np.uint8]) -> dict[str, npt.NDArray[np.float64]]:
    """Per image (N, H, W, 3 RGB): brightness, contrast, sharpness (mean |Laplacian|) and colour means, 0-1."""
    rgb = images.astype(np.float64) / 255.0
    luma = rgb @ np.array([0.299, 0.587, 0.114])
    laplacian = (
        -4 * luma[:, 1:-1, 1:-1] + luma[:, :-2, 1:-1] + luma[:, 2:, 1:-1] + luma[:, 1:-1, :-2] + luma[:, 1:-1, 2:]
    )
    return {
        "brightness": luma.mean(axis=(1, 2)),
        "contrast": luma.std(axis=(1, 2)),
        "sharpness": np.abs(laplacian).mean(axis=(1, 2)),
        "red": rgb[..., 0].mean(axis=(1, 2)),
        "green": rgb[..., 1].mean(axis=(1, 2)),
        "blue": rgb[..., 2].mean(axis=(1, 2)),
    }

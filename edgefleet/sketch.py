"""Drift sketches: the features counted on inputs (sensor windows, images), and counting them into bins.

Training fixes the bin edges (quantiles of the reference data); devices count live values into the same
bins, so sketches from many devices and intervals merge by adding counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Final

import numpy as np
import numpy.typing as npt

from edgefleet.manifest import Histogram

__all__ = [
    "BAND_EDGES",
    "CONFIDENCE_EDGES",
    "IMAGE_STATS",
    "SENSOR_STATS",
    "count_into",
    "dispersion",
    "effective_count",
    "image_features",
    "reference_histogram",
    "sensor_features",
]

# the bins of the confidence histogram: the reference profile, the device and the server count into the same ten
CONFIDENCE_EDGES: Final = tuple(round(0.1 * i, 1) for i in range(11))
# spectrum bands as fractions of the Nyquist frequency, narrow at the bottom where shaft harmonics live
# (at 2560 Hz: 0-80, 80-320, 320-640 and 640-1280 Hz, the last holding bearing resonances)
BAND_EDGES: Final = (0.0, 1 / 16, 1 / 4, 1 / 2, 1.0)
SENSOR_STATS: Final = ("mean", "rms", "peak", "kurtosis", "crest", *(f"band{i}" for i in range(len(BAND_EDGES) - 1)))
IMAGE_STATS: Final = ("brightness", "contrast", "sharpness", "red", "green", "blue")


def sensor_features(
    windows: npt.NDArray[np.floating], channel_names: Sequence[str]
) -> dict[str, npt.NDArray[np.float64]]:
    """Per channel and window (N, C, L), the drift features named ``channel.stat`` in SENSOR_STATS (raw units).

    ``rms`` is about the mean (the AC part), ``peak`` the largest distance from the mean, ``kurtosis`` the plain
    fourth standardized moment (3 for Gaussian noise, 1.5 for a sine), ``crest`` peak over RMS (√2 for a sine).
    ``band0``..``band3`` are the shares of the AC power in the spectrum bands of BAND_EDGES (fractions of the
    Nyquist frequency, so fixed relative to the package's sample rate). A flat channel gets 0 for the ratios.
    """
    data = np.asarray(windows, dtype=np.float64)
    mean = data.mean(axis=2)
    centred = data - mean[:, :, None]
    squared = centred * centred
    variance = squared.mean(axis=2)
    rms = np.sqrt(variance)
    peak = np.abs(centred).max(axis=2)
    fourth = (squared * squared).mean(axis=2)
    is_flat = variance <= 0
    safe_variance = np.where(is_flat, 1.0, variance)
    kurtosis = np.where(is_flat, 0.0, fourth / (safe_variance * safe_variance))
    crest = np.where(is_flat, 0.0, peak / np.sqrt(safe_variance))
    power = np.abs(np.fft.rfft(centred, axis=2)) ** 2
    bins = power.shape[2]
    # the DC bin is zero after centring; each band sums the bins whose frequency falls in it
    cuts = [round(edge * (bins - 1)) + 1 for edge in BAND_EDGES]
    cumulative = np.concatenate([np.zeros((*power.shape[:2], 1)), np.cumsum(power, axis=2)], axis=2)
    total = cumulative[:, :, -1]
    safe_total = np.where(total > 0, total, 1.0)
    stats = {"mean": mean, "rms": rms, "peak": peak, "kurtosis": kurtosis, "crest": crest}
    for band, (low, high) in enumerate(pairwise(cuts)):
        stats[f"band{band}"] = np.where(total > 0, (cumulative[:, :, high] - cumulative[:, :, low]) / safe_total, 0.0)
    return {
        f"{name}.{stat}": values[:, index] for stat, values in stats.items() for index, name in enumerate(channel_names)
    }


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


def dispersion(counts: npt.ArrayLike, squares: npt.ArrayLike, clusters: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """φ of counts summed over ``clusters`` independent clusters (counts along the last axis, any leading shape).

    ``squares`` holds, per bin, the sum over the clusters of (cluster's count in the bin)² / (cluster's total): with
    it the Pearson chi-square of the clusters against the pooled shares is Σ squares/share − n, so it adds up over
    clusters like the counts do. φ is that chi-square over (clusters − 1)(bins used − 1), at least 1; with fewer
    than two clusters or bins it cannot be told and is 1.
    """
    count = np.asarray(counts, dtype=np.float64)
    square = np.asarray(squares, dtype=np.float64)
    total = count.sum(axis=-1)
    safe_total = np.maximum(total, 1e-300)[..., np.newaxis]
    share = count / safe_total
    with np.errstate(invalid="ignore", divide="ignore"):
        chi2 = np.where(share > 0, square / np.where(share > 0, share, 1), 0.0).sum(axis=-1) - total
    used = (count > 0).sum(axis=-1)
    dof = (np.asarray(clusters, dtype=np.float64) - 1) * (used - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        phi = np.where(dof > 0, chi2 / np.where(dof > 0, dof, 1), 1.0)
    return np.asarray(np.maximum(phi, 1.0), dtype=np.float64)


def effective_count(edges: Sequence[float], values: npt.ArrayLike, groups: npt.ArrayLike) -> float:
    """What ``values`` (one per row) counted into ``edges`` are worth as independent values, when rows of one group
    (the windows of one recording) move together: their count over the groups' ``dispersion``."""
    data = np.asarray(values, dtype=np.float64).ravel()
    _, group_index = np.unique(np.asarray(groups).ravel(), return_inverse=True)
    bins = len(edges) - 1
    index = np.searchsorted(np.asarray(edges, dtype=np.float64)[1:-1], data, side="right")
    table = np.zeros((int(group_index.max(initial=-1)) + 1, bins))
    np.add.at(table, (group_index, index), 1.0)
    totals = table.sum(axis=1, keepdims=True)
    squares = (table * table / np.maximum(totals, 1)).sum(axis=0)
    return float(len(data) / dispersion(table.sum(axis=0), squares, len(table)))


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

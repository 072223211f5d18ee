"""Label-free accuracy estimate from the confidences (confidence-based performance estimation, CBPE).

A calibrated classifier is right with probability equal to its confidence, so the expected accuracy over an
interval is the mean confidence. Devices send the sum of their confidences (``confidence_sum``), which gives
the mean exactly; telemetry from older agents has only the counts per confidence bin, where each bin stands for
its midpoint (off by at most half a bin width, 0.05 with ten bins). A window mixing both uses the sums where it
has them and the midpoints for the rest. How far the estimate is from the true accuracy on shifted data is
measured in BENCHMARKS.md ("Drift detector") and bounded in tests/drift/test_estimate.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["estimated_accuracy"]


def estimated_accuracy(
    confidence_counts: npt.ArrayLike,
    edges: Sequence[float],
    *,
    confidence_sum: float = 0.0,
    summed: int = 0,
) -> float | None:
    """Expected accuracy (0-1) of the counted predictions; None when nothing was counted.

    ``confidence_sum`` is the sum of the confidences of ``summed`` of the counted predictions (those whose
    telemetry carried a sum); the other predictions count at their bins' midpoints.
    """
    counts = np.asarray(confidence_counts, dtype=np.float64)
    edge_array = np.asarray(edges, dtype=np.float64)
    if counts.ndim != 1 or edge_array.size != counts.size + 1:
        raise ValueError(
            f"{counts.size} confidence counts need {counts.size + 1} edges, got {edge_array.size}; "
            "pass the confidence edges of the package's reference profile"
        )
    total = counts.sum()
    if total <= 0:
        return None
    summed = int(min(max(summed, 0), total))
    midpoints = (edge_array[:-1] + edge_array[1:]) / 2
    midpoint_mean = float((counts * midpoints).sum() / total)
    return float((confidence_sum + midpoint_mean * (total - summed)) / total)

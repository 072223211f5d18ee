"""Classification quality figures from labels and predictions (numpy only)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["classification_metrics"]


def classification_metrics(
    truth: npt.NDArray[np.integer], predicted: npt.NDArray[np.integer], classes: int
) -> dict[str, float]:
    """Accuracy and macro-F1 (classes absent from both truth and predictions are left out of the mean)."""
    confusion = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(confusion, (truth, predicted), 1)
    tp = np.diag(confusion).astype(np.float64)
    support = confusion.sum(axis=1)
    predicted_count = confusion.sum(axis=0)
    present = (support + predicted_count) > 0
    f1 = np.divide(2 * tp, support + predicted_count, out=np.zeros(classes), where=present)
    return {
        "accuracy": float(tp.sum() / max(1, confusion.sum())),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
    }

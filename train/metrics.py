"""Classification quality on held-out data: per-class precision, recall and F1, and the confusion matrix."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict

__all__ = [
    "ClassMetrics",
    "ClassificationReport",
    "RulReport",
    "TrainingMetrics",
    "classification_metrics",
    "classification_report",
    "rul_metrics",
    "rul_report",
]


class ClassMetrics(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    label: str
    precision: float
    recall: float
    f1: float
    support: int


class ClassificationReport(BaseModel):
    """``confusion[i][j]`` counts windows of true class i predicted as class j."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    accuracy: float
    macro_f1: float
    per_class: list[ClassMetrics]
    labels: list[str]
    confusion: list[list[int]]


class RulReport(BaseModel):
    """Remaining-useful-life figures on held-out recordings, against predicting the training mean."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    unit: str
    cap: float
    rmse: float
    cmapss_score: float
    baseline_rmse: float
    improvement: float  # 1 - rmse / baseline_rmse


class TrainingMetrics(BaseModel):
    """What ``metrics.json`` holds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    classification: ClassificationReport
    rul: RulReport | None = None


def classification_report(
    truth: npt.NDArray[np.integer], predicted: npt.NDArray[np.integer], labels: list[str]
) -> ClassificationReport:
    """The full report; classes absent from both truth and predictions are left out of the macro mean."""
    classes = len(labels)
    confusion = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(confusion, (truth, predicted), 1)
    tp = np.diag(confusion).astype(np.float64)
    support = confusion.sum(axis=1)
    predicted_count = confusion.sum(axis=0)
    precision = np.divide(tp, predicted_count, out=np.zeros(classes), where=predicted_count > 0)
    recall = np.divide(tp, support, out=np.zeros(classes), where=support > 0)
    present = (support + predicted_count) > 0
    f1 = np.divide(2 * tp, support + predicted_count, out=np.zeros(classes), where=present)
    return ClassificationReport(
        accuracy=float(tp.sum() / max(1, confusion.sum())),
        macro_f1=float(f1[present].mean()) if present.any() else 0.0,
        per_class=[
            ClassMetrics(label=label, precision=float(p), recall=float(r), f1=float(f), support=int(s))
            for label, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
        ],
        labels=labels,
        confusion=confusion.tolist(),
    )


def classification_metrics(
    truth: npt.NDArray[np.integer], predicted: npt.NDArray[np.integer], classes: int
) -> dict[str, float]:
    """Accuracy and macro-F1 only, for reports that need the headline figures."""
    report = classification_report(truth, predicted, [str(i) for i in range(classes)])
    return {"accuracy": report.accuracy, "macro_f1": report.macro_f1}


def rul_metrics(true_rul: npt.ArrayLike, predicted_rul: npt.ArrayLike) -> dict[str, float]:
    """RMSE, and the C-MAPSS score, which punishes late predictions (too much life left) harder than early ones."""
    error = np.asarray(predicted_rul, dtype=np.float64) - np.asarray(true_rul, dtype=np.float64)
    score = np.where(error < 0, np.exp(-error / 13.0) - 1, np.exp(error / 10.0) - 1).sum()
    return {"rmse": float(np.sqrt(np.mean(error**2))), "cmapss_score": float(score)}


def rul_report(
    true_rul: npt.NDArray[np.floating],
    predicted_rul: npt.NDArray[np.floating],
    train_mean: float,
    cap: float,
    unit: str,
) -> RulReport:
    """The held-out RUL figures, with the baseline that always predicts the training set's mean RUL."""
    figures = rul_metrics(true_rul, predicted_rul)
    baseline = rul_metrics(true_rul, np.full(len(true_rul), train_mean))["rmse"]
    return RulReport(
        unit=unit,
        cap=cap,
        rmse=figures["rmse"],
        cmapss_score=figures["cmapss_score"],
        baseline_rmse=baseline,
        improvement=1.0 - figures["rmse"] / baseline if baseline > 0 else 0.0,
    )

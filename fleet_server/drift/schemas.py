"""What the drift API answers: per-feature reference and live histograms as data, with their statistics and levels."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from fleet_server.drift.stats import DriftLevel

__all__ = [
    "ClassDriftOut",
    "CohortDriftOut",
    "ConfidenceOut",
    "DeviceDriftOut",
    "DriftAlarmOut",
    "DriftHistoryOut",
    "DriftReportOut",
    "FeatureDriftOut",
]


class FeatureDriftOut(BaseModel):
    """One input feature: the reference bins and counts, the live counts in the same bins, and how far apart."""

    name: str
    edges: list[float]
    reference_counts: list[int]
    live_counts: list[int]
    live_count: int = Field(description="live values counted into this feature's bins over the window")
    psi: float | None = Field(description="population stability index; none without live data")
    ks: float | None = Field(description="largest distance between the binned reference and live CDFs")
    level: DriftLevel


class ClassDriftOut(BaseModel):
    """The predicted-class distribution against the reference's (chi-square)."""

    labels: list[str]
    reference_counts: list[int]
    live_counts: list[int]
    live_count: int
    chi2: float | None
    p_value: float | None
    level: DriftLevel


class ConfidenceOut(BaseModel):
    """The confidence histogram, reference against live, and the accuracy it suggests without labels."""

    edges: list[float]
    reference_counts: list[int]
    live_counts: list[int]
    estimated_accuracy: float | None = Field(description="label-free estimate from the live confidences")


class DriftReportOut(BaseModel):
    """Drift of one device or one cohort over a window, against the reference profile of the model it runs."""

    model_name: str | None
    model_version: str | None
    window_s: float
    since: datetime = Field(description="where the window starts: a bucket boundary for windows of two buckets or more")
    until: datetime
    has_reference: bool = Field(description="false when the model's package (or its reference profile) is unknown")
    reference: Literal["package", "device-baseline", "device-baselines"] = Field(
        description="what the live data was compared with: the package's reference profile (a device still "
        "collecting its baseline, a cohort with such a device), the device's own baseline (its first telemetry on "
        "this model version), or, for a cohort whose every device has one, its devices' baselines added up"
    )
    baseline_start: datetime | None = Field(default=None, description="the device's baseline: first bucket")
    baseline_end: datetime | None = Field(
        default=None, description="the device's baseline ends here; the device's live window starts after it"
    )
    note: str = Field(default="", description="why a level could not be judged, when it could not")
    intervals: int = Field(description="telemetry messages merged")
    sample_count: int = Field(description="live samples behind the statistics (the largest feature count)")
    level: DriftLevel
    worst_feature: str | None = Field(description="the feature with the highest PSI")
    worst_psi: float | None
    estimated_accuracy: float | None
    features: list[FeatureDriftOut] = Field(default_factory=list)
    classes: ClassDriftOut | None = None
    confidence: ConfidenceOut | None = None


class DeviceDriftOut(DriftReportOut):
    device_id: str
    profile: str
    tags: list[str]


class CohortDriftOut(DriftReportOut):
    """A cohort: model version × device profile × tag (an untagged device is in tag ""), devices' sketches added."""

    profile: str
    tag: str
    devices: int
    device_ids: list[str]


class DriftHistoryOut(BaseModel):
    """One device's or cohort's result in one periodic drift check."""

    at: datetime
    scope: Literal["device", "cohort"]
    device_id: str | None
    model_name: str | None
    model_version: str | None
    profile: str | None
    tag: str | None
    level: DriftLevel
    worst_feature: str | None
    worst_psi: float | None
    estimated_accuracy: float | None
    sample_count: int


class DriftAlarmOut(BaseModel):
    """A device or cohort whose last drift check found an alarm (or a warning), and since when it has."""

    scope: Literal["device", "cohort"]
    device_id: str | None
    model_name: str | None
    model_version: str | None
    profile: str | None
    tag: str | None
    level: DriftLevel
    worst_feature: str | None
    worst_psi: float | None
    estimated_accuracy: float | None
    sample_count: int
    checked_at: datetime
    since: datetime = Field(description="first check of the unbroken run of checks at this level or worse")

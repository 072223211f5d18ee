"""Drift on the server: statistics on the devices' sketches against the reference profile, and the label-free
accuracy estimate."""

from __future__ import annotations

from fleet_server.drift.estimate import estimated_accuracy
from fleet_server.drift.stats import (
    ClassDrift,
    DriftLevel,
    DriftThresholds,
    FeatureDrift,
    assess_classes,
    assess_feature,
    chi_square,
    chi_square_p_value,
    corrected_psi,
    dispersion,
    feature_levels,
    feature_statistics,
    ks_distance,
    overall_level,
    psi,
)

__all__ = [
    "ClassDrift",
    "DriftLevel",
    "DriftThresholds",
    "FeatureDrift",
    "assess_classes",
    "assess_feature",
    "chi_square",
    "chi_square_p_value",
    "corrected_psi",
    "dispersion",
    "estimated_accuracy",
    "feature_levels",
    "feature_statistics",
    "ks_distance",
    "overall_level",
    "psi",
]

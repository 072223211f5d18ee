"""Drift statistics on binned counts: PSI, KS distance, chi-square, and the rule that turns them into a level.

All inputs are counts in the reference profile's bins (the last axis); sketches from many devices and
intervals are summed before they get here. ``psi`` and ``ks_distance`` take any leading shape, so one call
scores a whole fleet (devices × features × bins).

The decision rule, per feature (``assess_feature``, ``feature_levels``):

1. Fewer than ``min_samples`` effective live values (rule 2): NOT_ENOUGH_DATA. Below it, a few windows from one machine state
   say more about that state than about drift.
2. PSI is corrected for sample size. Between two samples of the *same* distribution PSI is not zero: it is
   about chi²(k-1)·(φ/n + φ'/N) (n live, N reference values, k bins), so its expected value
   (k-1)·(φ/n + φ'/N) — e.g. 0.09 for 10 bins, 100 independent live values and a large reference — is
   subtracted before the thresholds. Without this, small devices warn all the time and big cohorts never get
   the benefit of their data.
   φ and φ' are the **dispersions** of the two sides (``dispersion``): values from one machine are not
   independent. A sensor's windows follow its operating point, so the hundred windows of one point count
   about as much as one: n/φ is the effective sample size. φ is estimated from the data, as quasi-likelihood
   models do: the Pearson chi-square of the clusters' counts (telemetry intervals, or devices) against their
   pooled shares, over its degrees of freedom; 1 when the clusters vary no more than independent values would.
   The minimum sample size (rule 1) applies to the effective count n/φ.
3. The corrected PSI gives WARN at ``psi_warn`` and ALARM at ``psi_alarm``; the KS distance must agree: it
   caps the level at WARN below ``ks_alarm`` and at OK below ``ks_warn``. PSI sees any change of shape,
   KS only moves of the distribution; a drift large enough to act on moves both, while the noise of
   two statistics rarely exceeds both thresholds at once. This keeps the false-alarm rate of
   drift-free streams at or below 1 % of intervals at the defaults (benchmarks/drift.py, BENCHMARKS.md).

Classes (``assess_classes``): a chi-square goodness-of-fit test against the reference shares. With the
thousands of predictions of a cohort any difference is significant, so significance (p < ``chi2_alarm_p``)
is necessary but not enough: the class shares must also have moved by a corrected PSI ≥ ``psi_warn`` for
WARN and ≥ ``psi_alarm`` for ALARM.

The chi-square p-value is the regularized upper incomplete gamma function, computed here (series and
continued fraction) because the server does not install scipy.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from edgefleet.sketch import dispersion

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
    "feature_levels",
    "feature_statistics",
    "ks_distance",
    "overall_level",
    "psi",
]

# pseudo-count added to every bin that is not empty on both sides: keeps PSI finite when a live bin is empty,
# and leaves bins padded with zeros on both sides (features with fewer bins, stacked for one call) out
_PSEUDO_COUNT: Final = 0.5


class DriftLevel(StrEnum):
    """How far live data has moved from the reference."""

    OK = "ok"
    WARN = "warn"
    ALARM = "alarm"
    NOT_ENOUGH_DATA = "not-enough-data"


# worst wins; NOT_ENOUGH_DATA ranks lowest, so it only shows when no feature has data
_RANK: Final = {DriftLevel.NOT_ENOUGH_DATA: 0, DriftLevel.OK: 1, DriftLevel.WARN: 2, DriftLevel.ALARM: 3}
_BY_CODE: Final = (DriftLevel.NOT_ENOUGH_DATA, DriftLevel.OK, DriftLevel.WARN, DriftLevel.ALARM)


class DriftThresholds(BaseModel):
    """Thresholds of the decision rule (module docstring); the defaults are measured in BENCHMARKS.md."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    psi_warn: float = Field(default=0.1, gt=0)
    psi_alarm: float = Field(default=0.25, gt=0)
    ks_warn: float = Field(default=0.1, gt=0, le=1)
    ks_alarm: float = Field(default=0.2, gt=0, le=1)
    chi2_alarm_p: float = Field(default=1e-3, gt=0, lt=1)
    min_samples: int = Field(default=200, ge=1)
    min_cohort_devices: int = Field(
        default=10,
        ge=1,
        description="a cohort is judged against the package's reference only with this many devices or more: the "
        "reference stands for the many machines of the training data, and a few machines, each at its own "
        "operating point, look drifted against it (BENCHMARKS.md); smaller cohorts wait for their devices' "
        "baselines",
    )


@dataclass(frozen=True, slots=True)
class FeatureDrift:
    """One feature's drift: PSI (sample-size corrected) and KS, or None when there is not enough data."""

    name: str
    psi: float | None
    ks: float | None
    live_count: int
    level: DriftLevel


@dataclass(frozen=True, slots=True)
class ClassDrift:
    """The predicted-class distribution's drift: chi-square statistic and p-value against the reference shares."""

    chi2: float | None
    p_value: float | None
    live_count: int
    level: DriftLevel


def _shares(
    reference: npt.NDArray[np.float64], live: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    used = (reference + live) > 0
    ref = reference + _PSEUDO_COUNT * used
    liv = live + _PSEUDO_COUNT * used
    ref_total = ref.sum(axis=-1, keepdims=True)
    live_total = liv.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (
            np.where(ref_total > 0, ref / np.where(ref_total > 0, ref_total, 1), 0.0),
            np.where(live_total > 0, liv / np.where(live_total > 0, live_total, 1), 0.0),
        )


def psi(reference: npt.ArrayLike, live: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Population stability index between counts along the last axis (any leading shape, broadcast)."""
    ref, liv = _shares(np.asarray(reference, dtype=np.float64), np.asarray(live, dtype=np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        terms = np.where((ref > 0) & (liv > 0), (liv - ref) * np.log(liv / np.where(ref > 0, ref, 1)), 0.0)
    return np.asarray(terms.sum(axis=-1), dtype=np.float64)


def ks_distance(reference: npt.ArrayLike, live: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Largest gap between the two binned CDFs (counts along the last axis; any leading shape, broadcast)."""
    ref = np.asarray(reference, dtype=np.float64)
    liv = np.asarray(live, dtype=np.float64)
    ref_cdf = np.cumsum(ref, axis=-1) / np.maximum(ref.sum(axis=-1, keepdims=True), 1)
    live_cdf = np.cumsum(liv, axis=-1) / np.maximum(liv.sum(axis=-1, keepdims=True), 1)
    return np.asarray(np.abs(ref_cdf - live_cdf).max(axis=-1), dtype=np.float64)


def corrected_psi(
    reference: npt.ArrayLike,
    live: npt.ArrayLike,
    live_dispersion: npt.ArrayLike = 1.0,
    reference_dispersion: npt.ArrayLike = 1.0,
) -> npt.NDArray[np.float64]:
    """PSI minus what sampling noise alone gives, (k-1)·(φ/n + φ'/N), floored at 0 (k: bins used on either side)."""
    ref = np.asarray(reference, dtype=np.float64)
    liv = np.asarray(live, dtype=np.float64)
    ref, liv = np.broadcast_arrays(ref, liv)
    bins = ((ref + liv) > 0).sum(axis=-1)
    per_value = np.asarray(live_dispersion, dtype=np.float64) / np.maximum(liv.sum(axis=-1), 1) + np.asarray(
        reference_dispersion, dtype=np.float64
    ) / np.maximum(ref.sum(axis=-1), 1)
    noise = np.maximum(bins - 1, 0) * per_value
    return np.asarray(np.maximum(psi(ref, liv) - noise, 0.0), dtype=np.float64)


def _level_codes(
    psi_value: npt.NDArray[np.float64],
    ks: npt.NDArray[np.float64],
    effective_count: npt.NDArray[np.float64],
    thresholds: DriftThresholds,
) -> npt.NDArray[np.int8]:
    by_psi = np.where(psi_value >= thresholds.psi_alarm, 3, np.where(psi_value >= thresholds.psi_warn, 2, 1))
    by_ks = np.where(ks >= thresholds.ks_alarm, 3, np.where(ks >= thresholds.ks_warn, 2, 1))
    codes = np.minimum(by_psi, by_ks)
    return np.where(effective_count < thresholds.min_samples, 0, codes).astype(np.int8)


def feature_levels(
    reference: npt.ArrayLike,
    live: npt.ArrayLike,
    thresholds: DriftThresholds | None = None,
    live_dispersion: npt.ArrayLike = 1.0,
    reference_dispersion: npt.ArrayLike = 1.0,
) -> npt.NDArray[np.object_]:
    """The level of every feature at once (counts along the last axis, any leading shape), as DriftLevel values."""
    return feature_statistics(reference, live, thresholds or DriftThresholds(), live_dispersion, reference_dispersion)[
        2
    ]


def feature_statistics(
    reference: npt.ArrayLike,
    live: npt.ArrayLike,
    thresholds: DriftThresholds,
    live_dispersion: npt.ArrayLike = 1.0,
    reference_dispersion: npt.ArrayLike = 1.0,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.object_]]:
    """Corrected PSI, KS distance and level of every feature at once, each statistic computed once.

    The dispersions (φ of each side, ``dispersion``) broadcast against the counts without their bins axis.
    """
    ref = np.asarray(reference, dtype=np.float64)
    liv = np.asarray(live, dtype=np.float64)
    value = corrected_psi(ref, liv, live_dispersion, reference_dispersion)
    ks = ks_distance(ref, liv)
    effective = liv.sum(axis=-1) / np.asarray(live_dispersion, dtype=np.float64)
    codes = _level_codes(value, ks, effective, thresholds)
    return value, ks, np.asarray(_BY_CODE, dtype=object)[codes]


def assess_feature(
    name: str, reference_counts: npt.ArrayLike, live_counts: npt.ArrayLike, thresholds: DriftThresholds | None = None
) -> FeatureDrift:
    """One feature's PSI (corrected), KS and level under the rule in the module docstring (independent values)."""
    rule = thresholds or DriftThresholds()
    ref = np.asarray(reference_counts, dtype=np.float64)
    liv = np.asarray(live_counts, dtype=np.float64)
    if ref.shape != liv.shape or ref.ndim != 1:
        raise ValueError(f"{name}: reference has bins {ref.shape}, live {liv.shape}; count into the same 1-D bins")
    live_count = int(liv.sum())
    if live_count < rule.min_samples:
        return FeatureDrift(name, None, None, live_count, DriftLevel.NOT_ENOUGH_DATA)
    value, ks, levels = feature_statistics(ref, liv, rule)
    return FeatureDrift(name, float(value), float(ks), live_count, DriftLevel(str(levels)))


def chi_square_p_value(statistic: float, dof: int) -> float:
    """P(chi²(dof) ≥ statistic): the regularized upper incomplete gamma Q(dof/2, statistic/2)."""
    if dof <= 0:
        return 1.0
    if statistic <= 0:
        return 1.0
    return _gamma_q(dof / 2, statistic / 2)


def _gamma_q(a: float, x: float) -> float:
    # Numerical Recipes' gser/gcf: the series converges fast below a+1, the continued fraction above
    log_prefix = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1:
        term = total = 1.0 / a
        denom = a
        for _ in range(10_000):
            denom += 1
            term *= x / denom
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(log_prefix))
    tiny = 1e-300
    b = x + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        step = d * c
        h *= step
        if abs(step - 1) < 1e-15:
            break
    return min(1.0, math.exp(log_prefix) * h)


def chi_square(reference_counts: npt.ArrayLike, live_counts: npt.ArrayLike) -> tuple[float, float]:
    """Chi-square goodness of fit of the live counts to the reference shares: (statistic, p-value)."""
    ref = np.asarray(reference_counts, dtype=np.float64)
    liv = np.asarray(live_counts, dtype=np.float64)
    if ref.shape != liv.shape or ref.ndim != 1:
        raise ValueError(f"class counts: reference {ref.shape}, live {liv.shape}; give one count per class")
    used = (ref + liv) > 0
    expected_share = (ref + _PSEUDO_COUNT * used)[used]
    expected = expected_share / expected_share.sum() * liv.sum()
    if expected.size < 2 or liv.sum() == 0:
        return 0.0, 1.0
    statistic = float((((liv[used] - expected) ** 2) / expected).sum())
    return statistic, chi_square_p_value(statistic, int(expected.size) - 1)


def assess_classes(
    reference_counts: npt.ArrayLike, live_counts: npt.ArrayLike, thresholds: DriftThresholds | None = None
) -> ClassDrift:
    """The class distribution's chi-square, p-value and level under the rule in the module docstring."""
    rule = thresholds or DriftThresholds()
    live_count = int(np.asarray(live_counts).sum())
    if live_count < rule.min_samples:
        return ClassDrift(None, None, live_count, DriftLevel.NOT_ENOUGH_DATA)
    statistic, p_value = chi_square(reference_counts, live_counts)
    level = DriftLevel.OK
    if p_value < rule.chi2_alarm_p:
        moved = float(corrected_psi(reference_counts, live_counts))
        if moved >= rule.psi_alarm:
            level = DriftLevel.ALARM
        elif moved >= rule.psi_warn:
            level = DriftLevel.WARN
    return ClassDrift(statistic, p_value, live_count, level)


def overall_level(levels: Iterable[DriftLevel]) -> DriftLevel:
    """The worst level; NOT_ENOUGH_DATA only when nothing had enough data (or there is nothing)."""
    worst = DriftLevel.NOT_ENOUGH_DATA
    for level in levels:
        if _RANK[level] > _RANK[worst]:
            worst = level
    return worst

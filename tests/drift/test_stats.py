"""PSI, KS and chi-square on binned counts, and the decision rule that turns them into drift levels."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats

from fleet_server.drift import (
    DriftLevel,
    DriftThresholds,
    assess_classes,
    assess_feature,
    chi_square,
    chi_square_p_value,
    corrected_psi,
    dispersion,
    feature_levels,
    ks_distance,
    overall_level,
    psi,
)

pytestmark = pytest.mark.unit

REFERENCE = np.full(10, 1000)


def test_psi_and_ks_have_their_textbook_values() -> None:
    assert psi([50, 50], [50, 50]) == 0.0
    # shares 0.5/0.5 against 0.8/0.2 (large counts, so the pseudo-count hardly matters)
    expected = (0.8 - 0.5) * np.log(0.8 / 0.5) + (0.2 - 0.5) * np.log(0.2 / 0.5)
    assert psi([500_000, 500_000], [800_000, 200_000]) == pytest.approx(expected, rel=1e-5)
    assert ks_distance([1, 1, 1, 1], [4, 0, 0, 0]) == pytest.approx(0.75)


def test_psi_stays_finite_when_live_bins_are_empty() -> None:
    value = psi(REFERENCE, [100, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    assert np.isfinite(value)
    assert value > 1


def test_bins_padded_with_zeros_on_both_sides_change_nothing() -> None:
    ref, live = [30, 50, 20], [10, 60, 30]
    assert psi([*ref, 0, 0], [*live, 0, 0]) == pytest.approx(psi(ref, live))
    assert corrected_psi([*ref, 0, 0], [*live, 0, 0]) == pytest.approx(corrected_psi(ref, live))


def test_vectorized_statistics_equal_one_call_per_feature() -> None:
    rng = np.random.default_rng(0)
    reference = rng.integers(0, 500, size=(7, 10))
    live = rng.integers(0, 50, size=(40, 7, 10))
    psi_all, ks_all, levels = psi(reference, live), ks_distance(reference, live), feature_levels(reference, live)
    assert psi_all.shape == ks_all.shape == levels.shape == (40, 7)
    for device in range(40):
        for feature in range(7):
            assert psi_all[device, feature] == pytest.approx(float(psi(reference[feature], live[device, feature])))
            assert ks_all[device, feature] == pytest.approx(
                float(ks_distance(reference[feature], live[device, feature]))
            )
            one = assess_feature("f", reference[feature], live[device, feature])
            assert levels[device, feature] == one.level


@pytest.mark.parametrize(("statistic", "dof"), [(0.5, 1), (3.0, 2), (9.0, 9), (30.0, 9), (150.0, 40), (400.0, 6)])
def test_chi_square_p_value_matches_scipy(statistic: float, dof: int) -> None:
    assert chi_square_p_value(statistic, dof) == pytest.approx(
        scipy_stats.chi2.sf(statistic, dof), rel=1e-9, abs=1e-300
    )


def test_chi_square_matches_scipy_goodness_of_fit() -> None:
    reference, live = np.array([300, 200, 500]), np.array([40, 20, 40])
    statistic, p_value = chi_square(reference, live)
    expected = scipy_stats.chisquare(live, f_exp=(reference + 0.5) / (reference + 0.5).sum() * live.sum())
    assert statistic == pytest.approx(expected.statistic)
    assert p_value == pytest.approx(expected.pvalue)


def test_without_drift_under_one_percent_of_features_warn_over_many_seeds() -> None:
    rng = np.random.default_rng(1234)
    shares = np.linspace(1, 2, 10) / np.linspace(1, 2, 10).sum()
    reference = rng.multinomial(10_000, shares)
    live = rng.multinomial(DriftThresholds().min_samples, shares, size=5000)
    levels = feature_levels(reference, live)
    # measured 0.0 % at these seeds; 1 % leaves the margin
    assert np.mean(levels != DriftLevel.OK) <= 0.01


def test_a_large_shift_alarms() -> None:
    rng = np.random.default_rng(5)
    reference = np.histogram(rng.normal(size=10_000), bins=[-np.inf, *np.linspace(-2, 2, 9), np.inf])[0]
    live = np.histogram(rng.normal(0.8, 1, size=500), bins=[-np.inf, *np.linspace(-2, 2, 9), np.inf])[0]
    drift = assess_feature("accel_x.rms", reference, live)
    assert drift.level is DriftLevel.ALARM
    assert drift.psi is not None
    assert drift.psi > 0.25
    assert drift.live_count == 500


def test_too_few_samples_say_not_enough_data_even_when_far_off() -> None:
    drift = assess_feature("temperature.mean", REFERENCE, [50, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    assert drift == type(drift)("temperature.mean", None, None, 50, DriftLevel.NOT_ENOUGH_DATA)


def test_sample_size_correction_removes_the_small_sample_bias() -> None:
    rng = np.random.default_rng(3)
    live = rng.multinomial(200, np.full(10, 0.1), size=2000)
    assert psi(REFERENCE, live).mean() > 0.04  # raw PSI of drift-free samples: about 9/200
    assert corrected_psi(REFERENCE, live).mean() < 0.02


def test_classes_alarm_on_a_big_move_and_stay_quiet_on_a_small_significant_one() -> None:
    reference = np.array([1000, 1000, 1000])
    assert assess_classes(reference, [900, 50, 50]).level is DriftLevel.ALARM
    small = assess_classes(reference, [3600, 3200, 3200])
    assert small.p_value is not None
    assert small.p_value < 1e-3
    assert small.level is DriftLevel.OK
    assert assess_classes(reference, [10, 10, 10]).level is DriftLevel.NOT_ENOUGH_DATA


def test_overall_level_is_the_worst_and_not_enough_data_only_when_nothing_has_data() -> None:
    assert overall_level([DriftLevel.OK, DriftLevel.ALARM, DriftLevel.WARN]) is DriftLevel.ALARM
    assert overall_level([DriftLevel.NOT_ENOUGH_DATA, DriftLevel.OK]) is DriftLevel.OK
    assert overall_level([DriftLevel.NOT_ENOUGH_DATA]) is DriftLevel.NOT_ENOUGH_DATA
    assert overall_level([]) is DriftLevel.NOT_ENOUGH_DATA


def _clustered(rng: np.random.Generator, clusters: int, size: int, bins: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Counts and squares of ``clusters`` intervals whose ``size`` values all fall in one random bin (one machine
    state per interval), as the server sums them."""
    table = np.zeros((clusters, bins))
    table[np.arange(clusters), rng.integers(0, bins, clusters)] = size
    return table.sum(axis=0), (table * table / size).sum(axis=0)


def test_dispersion_is_one_for_independent_values_and_the_cluster_size_for_copies() -> None:
    rng = np.random.default_rng(3)
    independent = rng.multinomial(200, np.full(10, 0.1), size=300)
    phi = dispersion(independent.sum(axis=0), (independent**2 / 200).sum(axis=0), 300)
    assert phi == pytest.approx(1.0, abs=0.1)
    counts, squares = _clustered(rng, 300, 200)
    assert dispersion(counts, squares, 300) == pytest.approx(200, rel=0.1)
    # one cluster says nothing about how clusters differ
    assert dispersion(counts, squares, 1) == 1.0


def test_clustered_values_without_drift_do_not_alarm_once_their_dispersion_is_known() -> None:
    rng = np.random.default_rng(4)
    raised_plain, alarms_corrected, warns_corrected, judged = 0, 0, 0, 0
    for _ in range(200):
        base, base_squares = _clustered(rng, 180, 20)  # a 30 min baseline: 180 intervals of one machine state each
        live, _ = _clustered(rng, 240, 20)  # 40 min of the same machine
        phi = dispersion(base, base_squares, 180)
        raised_plain += feature_levels(base, live) != DriftLevel.OK
        level = feature_levels(base, live, None, phi, phi)
        alarms_corrected += level == DriftLevel.ALARM
        warns_corrected += level == DriftLevel.WARN
        judged += level != DriftLevel.NOT_ENOUGH_DATA
    # worth 240 values rather than 4,800, they are judged and pass; counted as independent, they warn far more often
    assert judged == 200
    assert alarms_corrected <= 2
    assert warns_corrected <= 10
    assert raised_plain > 3 * (alarms_corrected + warns_corrected)


def test_the_minimum_sample_size_counts_effective_values() -> None:
    live = np.full(10, 100)
    assert feature_levels(REFERENCE, live) == DriftLevel.OK
    assert feature_levels(REFERENCE, live, None, 10.0) == DriftLevel.NOT_ENOUGH_DATA

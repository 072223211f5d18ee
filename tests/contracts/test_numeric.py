"""Semantic versions, sketches, preprocessing and the physics of the sensor simulator."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgefleet.errors import InputError
from edgefleet.preprocess import prepare_sensor_windows
from edgefleet.semver import parse_semver
from edgefleet.sensor_sim import (
    CHANNELS,
    FAULTS,
    SAMPLE_RATE_HZ,
    WINDOW_LENGTH,
    Bearing,
    Recording,
    Trajectory,
    simulate_dataset,
    simulate_run_to_failure,
)
from edgefleet.sketch import count_into, reference_histogram
from tests.factories import sensor_preprocessing

pytestmark = pytest.mark.unit


def test_semver_orders_as_semver_org_says() -> None:
    ordered = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "1.2.0",
        "1.10.0",
    ]
    parsed = [parse_semver(v) for v in ordered]
    assert parsed == sorted(parsed)
    assert str(parse_semver("2.0.1-rc.1+build.5")) == "2.0.1-rc.1"
    for bad in ("1.0", "01.0.0", "1.0.0\n", "v1.0.0"):
        with pytest.raises(ValueError, match="not a semantic version"):
            parse_semver(bad)


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=200), st.lists(st.floats(-1e7, 1e7), max_size=200))
def test_sketch_counts_every_value_once(reference: list[float], live: list[float]) -> None:
    histogram = reference_histogram(reference)
    assert sum(histogram.counts) == len(reference)
    assert sum(count_into(histogram.edges, live)) == len(live)


@given(st.lists(st.floats(-100, 100), max_size=50), st.lists(st.floats(-100, 100), max_size=50))
def test_sketches_merge_by_adding_counts(a: list[float], b: list[float]) -> None:
    edges = [-50.0, -1.0, 0.0, 1.0, 50.0]
    merged = [x + y for x, y in zip(count_into(edges, a), count_into(edges, b), strict=True)]
    assert merged == count_into(edges, a + b)


def test_preprocessing_refuses_wrong_shapes_and_nan() -> None:
    spec = sensor_preprocessing()
    channels = len(CHANNELS)
    assert prepare_sensor_windows(np.zeros((channels, WINDOW_LENGTH)), spec).shape == (1, channels, WINDOW_LENGTH)
    with pytest.raises(InputError, match="the model needs"):
        prepare_sensor_windows(np.zeros((channels - 1, WINDOW_LENGTH)), spec)
    bad = np.zeros((channels, WINDOW_LENGTH))
    bad[0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        prepare_sensor_windows(bad, spec)


def test_the_same_seed_gives_the_same_data() -> None:
    a, la, ga = simulate_dataset(2, 2, seed=7)
    b, lb, gb = simulate_dataset(2, 2, seed=7)
    assert np.array_equal(a, b)
    assert np.array_equal(la, lb)
    assert np.array_equal(ga, gb)


def _spectrum_peak_hz(signal: np.ndarray, sample_rate: float) -> float:
    spectrum = np.abs(np.fft.rfft(signal - signal.mean()))
    return float(np.fft.rfftfreq(len(signal), 1 / sample_rate)[spectrum.argmax()])


def test_imbalance_shows_at_shaft_speed_and_misalignment_at_twice_it() -> None:
    rng = np.random.default_rng(0)
    for fault, order in (("imbalance", 1), ("misalignment", 2)):
        rec = Recording.random(FAULTS.index(fault), rng, speed_hz=(25.0, 25.0))
        # several windows of one recording give a finer spectrum
        signal = np.concatenate([rec.window(i, rng)[0] for i in range(8)])
        assert _spectrum_peak_hz(signal, SAMPLE_RATE_HZ) == pytest.approx(order * 25.0, abs=1.0)


def test_outer_race_defect_repeats_at_bpfo_in_the_envelope() -> None:
    rng = np.random.default_rng(1)
    rec = Recording.random(FAULTS.index("bearing_outer"), rng, speed_hz=(30.0, 30.0))
    signal = np.concatenate([rec.window(i, rng)[0] for i in range(16)])
    envelope = np.abs(signal - signal.mean())
    expected = Bearing().bpfo(30.0)
    assert _spectrum_peak_hz(envelope, SAMPLE_RATE_HZ) == pytest.approx(expected, rel=0.05)


def test_bearing_frequencies_match_the_published_6205_multiples() -> None:
    # the CWRU bearing data centre lists these multiples of shaft speed for its 6205-2RS drive-end bearing
    bearing = Bearing()
    assert bearing.bpfo(1.0) == pytest.approx(3.5848, abs=1e-3)
    assert bearing.bpfi(1.0) == pytest.approx(5.4152, abs=1e-3)
    assert 2 * bearing.bsf(1.0) == pytest.approx(4.7135, abs=1e-3)
    assert bearing.ftf(1.0) == pytest.approx(0.39828, abs=1e-3)


def test_a_ball_defect_strikes_at_twice_bsf_and_swells_at_the_cage_frequency() -> None:
    rng = np.random.default_rng(3)
    rec = Recording.random(FAULTS.index("bearing_ball"), rng, speed_hz=(30.0, 30.0))
    signal = np.concatenate([rec.window(i, rng)[0] for i in range(16)])
    envelope = np.abs(signal - signal.mean())
    spectrum = np.abs(np.fft.rfft(envelope - envelope.mean()))
    freqs = np.fft.rfftfreq(len(envelope), 1 / SAMPLE_RATE_HZ)
    above_cage = freqs > 20.0
    assert freqs[above_cage][spectrum[above_cage].argmax()] == pytest.approx(2 * Bearing().bsf(30.0), rel=0.05)
    # the strongest slow swing of the envelope is the cage turning the ball through the load zone
    slow = (freqs > 2.0) & (freqs < 20.0)
    assert freqs[slow][spectrum[slow].argmax()] == pytest.approx(Bearing().ftf(30.0), abs=1.0)


def test_a_run_to_failure_degrades_until_its_life_is_used_up() -> None:
    rng = np.random.default_rng(4)
    run = Trajectory.random(FAULTS.index("bearing_inner"), rng)
    hours = np.arange(0.0, run.life_h, 1.0)
    severity = np.array([run.severity(h) for h in hours])
    assert (severity[hours < run.onset_h] == 0).all()
    assert (np.diff(severity[hours >= run.onset_h]) > 0).all()
    assert run.severity(run.life_h) == pytest.approx(Trajectory.FAILURE_SEVERITY)
    snapshots = [run.snapshot(h, rng) for h in (0.0, run.life_h - 0.5)]
    (healthy, label_healthy, rul_healthy), (worn, label_worn, rul_worn) = snapshots
    assert (label_healthy, label_worn) == (0, FAULTS.index("bearing_inner"))
    assert rul_healthy == pytest.approx(run.life_h)
    assert rul_worn == pytest.approx(0.5)
    assert worn[0].std() > 3 * healthy[0].std()


def test_runs_to_failure_are_reproducible_and_end_at_zero_life() -> None:
    a = simulate_run_to_failure(1, seed=5, every_h=5.0)
    b = simulate_run_to_failure(1, seed=5, every_h=5.0)
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(np.asarray(x), np.asarray(y))
    windows, labels, groups, rul = a
    assert windows.shape[1:] == (len(CHANNELS), WINDOW_LENGTH)
    assert set(np.unique(labels)) == set(range(len(FAULTS)))
    for run in np.unique(groups):
        assert np.all(np.diff(rul[groups == run]) < 0)
        assert rul[groups == run][-1] < 5.0


def test_pump_pressure_follows_speed_squared_and_falls_with_load() -> None:
    rng = np.random.default_rng(2)
    pressure = CHANNELS.index(("pressure", "bar"))

    def mean_pressure(speed: float, load: float) -> float:
        rec = Recording.random(FAULTS.index("normal"), rng, speed_hz=(speed, speed), load=(load, load))
        return float(rec.window(0, rng)[pressure].mean())

    assert mean_pressure(40, 0.5) / mean_pressure(20, 0.5) == pytest.approx(4.0, rel=0.1)
    assert mean_pressure(30, 1.0) < mean_pressure(30, 0.3)

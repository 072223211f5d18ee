"""Drift detector: false alarms on drift-free streams, detection delay on injected drifts, the label-free accuracy
estimate against the truth, and the cost of the server's whole periodic check.

Sensor devices are machines: each has its own nominal speed (20-40 Hz) and load, and wanders around them (±0.5 Hz,
±0.05 load) with a new operating point every 5 s. They read 1 window/s (10 per 10 s interval): the agent's default
is 20/s, but windows of one operating point are nearly copies, so more of them add counts, not information, and
the dispersion correction (fleet_server/drift/stats.py) gives both rates the same effective sample size. Their
sketches are made by the real IntervalAggregator, so what is scored is what devices send. The statistics follow
fleet_server/drift/service.py: a device is judged against its own baseline (its first ``baseline_s`` of telemetry,
the server's default 30 min) with the baseline's dispersion on both sides; its window grows from the baseline's
end up to the sliding width, as on the server. A cohort of 20 devices is judged against the package reference built
as train/reference.py builds it (nominal-class data only, effective count from its recordings), with the larger
of its pooled baselines' and its devices' dispersion. In the drift scenarios 5 devices of the cohort drift and 15 do
not. Everything is repeated over seeds and the median reported.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

import numpy as np
import numpy.typing as npt

from benchmarks.drift_cbpe import Estimate, trained_estimates
from benchmarks.drift_check import FleetShape, check_s, seed_fleet, seed_rows, utc
from devices.drifts import BearingFaultOnset, Blur, Brightness, GainChange, NewOperatingSpeed
from edge_agent.telemetry import IntervalAggregator, Prediction, ReportContext
from edgefleet.manifest import (
    Artifact,
    ChannelSpec,
    DType,
    FeatureReference,
    ImagePreprocessing,
    Manifest,
    ReferenceProfile,
    SensorPreprocessing,
    Task,
    TensorSpec,
)
from edgefleet.messages import SystemStats
from edgefleet.sensor_sim import CHANNELS, FAULTS, SAMPLE_RATE_HZ, WINDOW_LENGTH, Recording
from edgefleet.sketch import dispersion, effective_count, image_features, reference_histogram, sensor_features
from fleet_server.db import make_engine, make_session_factory, upgrade
from fleet_server.drift import DriftThresholds, feature_levels
from fleet_server.drift.settings import DriftSettings
from train.datasets.surfaces import synthetic_images

__all__ = ["run"]

_WINDOWS_PER_INTERVAL: Final = 10  # 10 s at 1 window/s (module docstring)
_WINDOWS_PER_RECORDING: Final = 5  # a new operating point every 5 s, as edge_agent.sources.simulated at 20/s
_IMAGES_PER_INTERVAL: Final = 20  # 10 s of a camera at 2 frames/s
_COHORT: Final = 20
_DRIFTING: Final = 5
_NULL_INTERVALS: Final = 420
_ONSET: Final = 2
_AFTER_ONSET: Final = 360
_SLIDING: Final = (30, 90, 360)  # sliding windows, in intervals: 5 min, 15 min, 1 h (the server's default)
_SEEDS: Final = (0, 1, 2)
_SMALL_COHORTS: Final = (1, 2, 3, 5, 10, 20)  # cohorts judged against the package: how many devices
_SMALL_WIDTH: Final = 30  # their sliding window, in intervals (5 min)
_SMALL_DRAWS: Final = 40  # random cohorts of each size, per seed
_SLOW_RECORDING: Final = 25  # a new operating point every 25 windows: 5 s at 5 windows/s, as in the demo
_BASELINE_INTERVALS: Final = int(DriftSettings().baseline_s // 10)  # the server's default baseline, 10 s intervals
_SPEED_WANDER_HZ: Final = 0.5
_LOAD_WANDER: Final = 0.05
_NORMAL: Final = FAULTS.index("normal")
_CONTEXT: Final = ReportContext(device_id="bench", model=None)
_SYSTEM: Final = SystemStats(cpu_percent=0.0, rss_bytes=0)

Sketches = npt.NDArray[np.float64]  # (devices, intervals, features, bins)
_SensorInjection = GainChange | BearingFaultOnset | NewOperatingSpeed


@dataclass(frozen=True, slots=True)
class _Profile:
    manifest: Manifest
    names: tuple[str, ...]
    reference: npt.NDArray[np.float64]  # (features, bins), zero-padded
    dispersions: npt.NDArray[np.float64]  # (features,): the reference's own, from its effective counts


def _manifest(preprocessing: SensorPreprocessing | ImagePreprocessing, reference: ReferenceProfile) -> _Profile:
    manifest = Manifest(
        name="drift-bench",
        version="1.0.0",
        task=Task.CLASSIFICATION,
        created_at="2026-11-24T00:00:00Z",
        inputs=[TensorSpec(name="x", shape=[None, 1], dtype=DType.FLOAT32)],
        outputs=[TensorSpec(name="probs", shape=[None, 2], dtype=DType.FLOAT32)],
        labels=["a", "b"],
        preprocessing=preprocessing,
        artifacts=[
            Artifact(path="m.onnx", format="onnx", precision="fp32", runtime="any", sha256="0" * 64, size_bytes=1)
        ],
        reference_profile=reference,
    )
    bins = max(len(f.histogram.counts) for f in reference.features)
    table = np.zeros((len(reference.features), bins))
    for index, feature in enumerate(reference.features):
        table[index, : len(feature.histogram.counts)] = feature.histogram.counts
    phi = [
        max(1.0, sum(f.histogram.counts) / (f.effective_count or sum(f.histogram.counts))) for f in reference.features
    ]
    return _Profile(manifest, tuple(f.name for f in reference.features), table, np.asarray(phi))


def _reference(features: dict[str, npt.NDArray[np.float64]], groups: npt.NDArray[np.int64]) -> ReferenceProfile:
    features_out = []
    for name, values in features.items():
        histogram = reference_histogram(values)
        features_out.append(
            FeatureReference(
                name=name, histogram=histogram, effective_count=effective_count(histogram.edges, values, groups)
            )
        )
    return ReferenceProfile(sample_count=len(groups), features=features_out)


@dataclass(frozen=True, slots=True)
class _Machine:
    """One device's machine: its own operating point, around which it wanders."""

    speed_hz: float
    load: float

    @classmethod
    def random(cls, rng: np.random.Generator) -> _Machine:
        return cls(float(rng.uniform(20.5, 39.5)), float(rng.uniform(0.35, 0.95)))

    def recording(self, rng: np.random.Generator, drift: _SensorInjection | None) -> Recording:
        if isinstance(drift, NewOperatingSpeed):
            return drift.recording(_NORMAL, rng)
        speed = (self.speed_hz - _SPEED_WANDER_HZ, self.speed_hz + _SPEED_WANDER_HZ)
        load = (self.load - _LOAD_WANDER, self.load + _LOAD_WANDER)
        return Recording.random(_NORMAL, rng, speed_hz=speed, load=load)


def _sensor_profile(rng: np.random.Generator) -> _Profile:
    # the package reference as train/reference.py builds it: nominal-class windows of machines across the range
    windows = np.stack([Recording.random(_NORMAL, rng).window(i, rng) for _ in range(400) for i in range(25)])
    groups = np.repeat(np.arange(400), 25)
    channels = [ChannelSpec(name=name, unit=unit, mean=0.0, std=1.0) for name, unit in CHANNELS]
    names = [c.name for c in channels]
    spec = SensorPreprocessing(channels=channels, window_length=WINDOW_LENGTH, sample_rate_hz=SAMPLE_RATE_HZ)
    return _manifest(spec, _reference(sensor_features(windows, names), groups))


def _image_profile(images: npt.NDArray[np.uint8]) -> _Profile:
    spec = ImagePreprocessing(height=images.shape[1], width=images.shape[2], mean=(0, 0, 0), std=(1, 1, 1))
    return _manifest(spec, _reference(image_features(images), np.arange(len(images))))


def _count(profile: _Profile, inputs: Sequence[npt.NDArray[np.generic]]) -> npt.NDArray[np.float64]:
    """The sketches of one interval's telemetry message, as a (features, bins) table."""
    aggregator = IntervalAggregator(profile.manifest)
    for item in inputs:
        aggregator.add(item, Prediction(0, 0.9, 1.0))
    message = aggregator.message(_CONTEXT, seq=0, ts=0.0, interval_s=10.0, system=_SYSTEM)
    table = np.zeros_like(profile.reference)
    for index, name in enumerate(profile.names):
        counts = message.sketches[name]
        table[index, : len(counts)] = counts
    return table


def _squares(tables: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Per bin, count² / the interval's total: what the server keeps to tell the intervals' dispersion."""
    totals = tables.sum(axis=-1, keepdims=True)
    return np.asarray(np.where(totals > 0, tables * tables / np.maximum(totals, 1), 0.0), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class _Device:
    baseline: npt.NDArray[np.float64]  # (features, bins): its first 30 min, summed
    baseline_squares: npt.NDArray[np.float64]  # (features, bins): _squares of its intervals, summed
    sketches: npt.NDArray[np.float64]  # (intervals, features, bins) after the baseline

    @classmethod
    def of(cls, tables: list[npt.NDArray[np.float64]]) -> _Device:
        base = np.stack(tables[:_BASELINE_INTERVALS])
        return cls(base.sum(axis=0), _squares(base).sum(axis=0), np.stack(tables[_BASELINE_INTERVALS:]))

    @property
    def baseline_phi(self) -> npt.NDArray[np.float64]:
        return dispersion(self.baseline, self.baseline_squares, _BASELINE_INTERVALS)


def _sensor_device(
    profile: _Profile,
    rng: np.random.Generator,
    intervals: int,
    drift: _SensorInjection | None,
    onset: int,
    per_recording: int = _WINDOWS_PER_RECORDING,
) -> _Device:
    """One machine's baseline and ``intervals`` after it; ``drift`` applies from interval ``onset`` after it on; a
    new operating point every ``per_recording`` windows."""
    machine = _Machine.random(rng)
    tables = []
    recording = machine.recording(rng, None)
    index = 0
    for interval in range(_BASELINE_INTERVALS + intervals):
        drifting = drift is not None and interval >= _BASELINE_INTERVALS + onset
        windows = []
        for _ in range(_WINDOWS_PER_INTERVAL):
            if index >= per_recording:
                recording = machine.recording(rng, drift if drifting else None)
                index = 0
            window = recording.window(index, rng)
            index += 1
            if drifting and isinstance(drift, GainChange | BearingFaultOnset):
                window = drift.apply(window, rng)
            windows.append(window)
        tables.append(_count(profile, windows))
    return _Device.of(tables)


def _image_device(
    profile: _Profile,
    pool: npt.NDArray[np.uint8],
    rng: np.random.Generator,
    intervals: int,
    drift: Brightness | Blur | None,
) -> _Device:
    tables = []
    for interval in range(_BASELINE_INTERVALS + intervals):
        images = list(pool[rng.integers(0, len(pool), _IMAGES_PER_INTERVAL)])
        if drift is not None and interval >= _BASELINE_INTERVALS + _ONSET:
            images = [drift.apply(image, rng) for image in images]
        tables.append(_count(profile, images))
    return _Device.of(tables)


def _sliding(sketches: Sketches, width: int) -> Sketches:
    """Sums over the last ``width`` intervals (fewer at the start, as the server's window after a baseline)."""
    cumulative = np.cumsum(sketches, axis=1)
    shifted = np.concatenate([np.zeros_like(cumulative[:, :width]), cumulative[:, :-width]], axis=1)
    return np.asarray(cumulative - shifted[:, : cumulative.shape[1]], dtype=np.float64)


@dataclass(frozen=True, slots=True)
class _Fleet:
    devices: list[_Device]

    @property
    def baselines(self) -> npt.NDArray[np.float64]:
        return np.stack([d.baseline for d in self.devices])

    @property
    def phis(self) -> npt.NDArray[np.float64]:
        return np.stack([d.baseline_phi for d in self.devices])

    @property
    def sketches(self) -> Sketches:
        return np.stack([d.sketches for d in self.devices])


def _device_levels(fleet: _Fleet, width: int, rule: DriftThresholds) -> npt.NDArray[np.object_]:
    """(devices, intervals, features): each device against its own baseline, with the baseline's dispersion."""
    phi = fleet.phis[:, None]
    return feature_levels(fleet.baselines[:, None], _sliding(fleet.sketches, width), rule, phi, phi)


def _cohort_levels(
    profile: _Profile, devices: Sketches, baselines: _Fleet, width: int, rule: DriftThresholds
) -> npt.NDArray[np.object_]:
    """(intervals, features): the cohort (``devices`` (devices, intervals, features, bins)) against the package."""
    per_device = _sliding(devices, width)
    cohort = per_device.sum(axis=0)
    members = baselines.devices
    pooled_phi = dispersion(
        np.sum([d.baseline for d in members], axis=0),
        np.sum([d.baseline_squares for d in members], axis=0),
        _BASELINE_INTERVALS * len(members),
    )
    unit_phi = dispersion(cohort, _squares(per_device).sum(axis=0), len(devices))
    return feature_levels(profile.reference, cohort, rule, np.maximum(pooled_phi, unit_phi), profile.dispersions)


def _cohort_own_levels(
    devices: Sketches, baselines: _Fleet, width: int, rule: DriftThresholds
) -> npt.NDArray[np.object_]:
    """(intervals, features): the cohort against its devices' baselines added up, each scaled to its device's share
    of the window, with the pooled baselines' dispersion on both sides (fleet_server/drift/service.py)."""
    per_device = _sliding(devices, width)  # (devices, intervals, features, bins)
    members = baselines.devices
    base = np.stack([d.baseline for d in members])[:, None]  # (devices, 1, features, bins)
    scale = per_device.sum(axis=-1, keepdims=True) / np.maximum(base.sum(axis=-1, keepdims=True), 1)
    phi = dispersion(
        base.sum(axis=(0, 1)),
        np.sum([d.baseline_squares for d in members], axis=0),
        _BASELINE_INTERVALS * len(members),
    )
    return feature_levels((base * scale).sum(axis=0), per_device.sum(axis=0), rule, phi, phi)


def _package_levels(profile: _Profile, devices: Sketches, rule: DriftThresholds) -> npt.NDArray[np.object_]:
    """(intervals, features): a cohort whose devices have no baseline yet against the package, without the
    ``min_cohort_devices`` rule, as fleet_server/drift/service.py scores it: the live dispersion is the larger of
    the window's intervals' and its devices' (when there are two or more)."""
    per_device = _sliding(devices, _SMALL_WIDTH)  # (devices, intervals, features, bins)
    cohort = per_device.sum(axis=0)
    intervals = np.minimum(np.arange(cohort.shape[0]) + 1, _SMALL_WIDTH)[:, None]
    phi = dispersion(cohort, _sliding(_squares(devices.sum(axis=0))[None], _SMALL_WIDTH)[0], intervals)
    if len(devices) >= 2:
        phi = np.maximum(phi, dispersion(cohort, _squares(per_device).sum(axis=0), len(devices)))
    return feature_levels(profile.reference, cohort, rule, phi, profile.dispersions)


def _any(levels: npt.NDArray[np.object_], *wanted: str) -> npt.NDArray[np.bool_]:
    """Whether any feature (the last axis) is at one of ``wanted``."""
    return np.asarray(np.isin(levels.astype(str), wanted).any(axis=-1), dtype=bool)


def _judged(levels: npt.NDArray[np.object_]) -> npt.NDArray[np.bool_]:
    """Whether every feature (the last axis) had enough effective data to be judged."""
    return np.asarray((levels.astype(str) != "not-enough-data").all(axis=-1), dtype=bool)


def _delay(alarms: npt.NDArray[np.bool_]) -> float:
    """Intervals from the onset to the first alarm (1: the onset interval itself); inf if never."""
    hits = np.flatnonzero(alarms[_ONSET:])
    return float(hits[0] + 1) if hits.size else float("inf")


def _false_alarms(profile: _Profile, null: _Fleet, rule: DriftThresholds) -> dict[str, float]:
    rates = {}
    for width in _SLIDING:
        levels = _device_levels(null, width, rule)
        rates[f"device, {width}"] = float(_any(levels, "alarm").mean())
        rates[f"device warn, {width}"] = float(_any(levels, "alarm", "warn").mean())
        rates[f"device judged, {width}"] = float(_judged(levels).mean())
        cohort = _cohort_levels(profile, null.sketches, null, width, rule)
        rates[f"cohort package, {width}"] = float(_any(cohort, "alarm").mean())
        rates[f"cohort package judged, {width}"] = float(_judged(cohort).mean())
        own = _cohort_own_levels(null.sketches, null, width, rule)
        rates[f"cohort, {width}"] = float(_any(own, "alarm").mean())
        rates[f"cohort warn, {width}"] = float(_any(own, "alarm", "warn").mean())
        rates[f"cohort judged, {width}"] = float(_judged(own).mean())
    rates |= _small_cohorts(profile, null.sketches, rule, "")
    return rates


def _small_cohorts(profile: _Profile, sketches: Sketches, rule: DriftThresholds, kind: str) -> dict[str, float]:
    """Per cohort size: the share of checks with an alarm, and with a feature judged, against the package; over
    random cohorts of that many of the devices, since which machines meet decides more than the checks' count."""
    rng = np.random.default_rng(len(kind))
    rates = {}
    for size in _SMALL_COHORTS:
        draws = [rng.choice(len(sketches), size, replace=False) for _ in range(_SMALL_DRAWS)]
        levels = np.stack([_package_levels(profile, sketches[d], rule)[_SMALL_WIDTH:] for d in draws])
        rates[f"package{kind} {size}"] = float(_any(levels, "alarm").mean())
        rates[f"package judged{kind} {size}"] = float((levels.astype(str) != "not-enough-data").any(axis=-1).mean())
    return rates


def _delays(drifted: _Fleet, null: _Fleet, rule: DriftThresholds, width: int) -> tuple[float, float, float]:
    """Median per-device delay (against each device's own baseline), and the delay of a cohort of 5 drifting
    devices among 15 healthy ones and of a cohort where all 20 drift (against their baselines)."""
    alarms = _any(_device_levels(drifted, width, rule), "alarm")
    device = statistics.median(_delay(a) for a in alarms)
    intervals = drifted.sketches.shape[1]
    healthy = _Fleet(null.devices[: _COHORT - _DRIFTING])
    members = np.concatenate([drifted.sketches, healthy.sketches[:, :intervals]])
    some = _cohort_own_levels(members, _Fleet(drifted.devices + healthy.devices), width, rule)
    every = _cohort_own_levels(drifted.sketches, drifted, width, rule)
    return device, _delay(_any(some, "alarm")), _delay(_any(every, "alarm"))


_SENSOR_DRIFTS: Final[dict[str, _SensorInjection]] = {
    "vibration gain ×1.3 (accel_x)": GainChange(1.3, (0,)),
    "bearing outer-race fault onset (0.15 of full)": BearingFaultOnset(0.15),
    "new operating speed (42-48 Hz; reference 20-40)": NewOperatingSpeed((42.0, 48.0)),
}
_IMAGE_DRIFTS: Final[dict[str, Brightness | Blur]] = {
    "image brightness +0.15": Brightness(0.15),
    "lens blur (box, radius 2)": Blur(2),
}


def _one_seed(seed: int, rule: DriftThresholds) -> tuple[dict[str, float], dict[str, float], dict[str, list[float]]]:
    """False-alarm rates (sensor, image) and delays per drift name (device and cohort per sliding width)."""
    rng = np.random.default_rng(seed)
    sensor = _sensor_profile(rng)
    null = _Fleet([_sensor_device(sensor, rng, _NULL_INTERVALS, None, 0) for _ in range(_COHORT)])
    rates = _false_alarms(sensor, null, rule)
    slow = [_sensor_device(sensor, rng, 4 * _SMALL_WIDTH, None, 0, _SLOW_RECORDING) for _ in range(_COHORT)]
    rates |= _small_cohorts(sensor, _Fleet(slow).sketches, rule, " slow")
    intervals = _ONSET + _AFTER_ONSET
    delays: dict[str, list[float]] = {}
    for name, drift in _SENSOR_DRIFTS.items():
        drifted = _Fleet([_sensor_device(sensor, rng, intervals, drift, _ONSET) for _ in range(_DRIFTING)])
        delays[name] = list(_delays(drifted, null, rule, _SLIDING[-1]))
    images = synthetic_images(per_class=600, size=64, seed=seed)
    good = images.images[images.labels == list(images.label_names).index("good")]
    # a random half of the good images for the reference (train/reference.py: nominal class only), half for devices
    order = rng.permutation(len(good))
    image = _image_profile(good[order[::2]])
    pool = good[order[1::2]]
    image_null = _Fleet([_image_device(image, pool, rng, _NULL_INTERVALS, None) for _ in range(_COHORT)])
    image_rates = _false_alarms(image, image_null, rule)
    for name, image_drift in _IMAGE_DRIFTS.items():
        drifted = _Fleet([_image_device(image, pool, rng, intervals, image_drift) for _ in range(_DRIFTING)])
        delays[name] = list(_delays(drifted, image_null, rule, _SLIDING[-1]))
    return rates, image_rates, delays


def _check_cost(devices: int, features: int) -> tuple[float, float, int]:
    """(cold first check s, steady check s (median of 3), telemetry rows): a fleet with 1 h of telemetry every
    5 min; the steady check follows 5 min of new telemetry, as the periodic check does."""
    settings = DriftSettings()
    shape = FleetShape(devices, features, 300.0)
    now = utc(1_800_000_000.0 + 5)
    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(f"sqlite:///{folder}/drift.db")
        upgrade(engine)
        sessions = make_session_factory(engine)
        with sessions() as session, session.begin():
            seed_fleet(session, shape, now)
            rows = seed_rows(session, shape, now - timedelta(hours=1), now - timedelta(seconds=300))
        cold, _, _ = check_s(sessions, settings, now)
        steady = []
        for step in range(1, 4):
            at = now + timedelta(seconds=300 * step)
            with sessions() as session, session.begin():
                rows += seed_rows(session, shape, at - timedelta(seconds=300), at - timedelta(seconds=1), seed=step)
            steady.append(check_s(sessions, settings, at)[0])
        engine.dispose()
    return cold, statistics.median(steady), rows


def _feature_cost_us() -> float:
    rng = np.random.default_rng(0)
    recording = Recording.random(_NORMAL, rng)
    batch = np.stack([recording.window(i, rng) for i in range(64)])
    names = [name for name, _ in CHANNELS]
    times = []
    for _ in range(20):
        start = time.perf_counter()
        sensor_features(batch, names)
        times.append(time.perf_counter() - start)
    return statistics.median(times) / 64 * 1e6


def _fmt(delay: float) -> str:
    return "never" if delay == float("inf") else f"{delay:.0f}"


def run() -> str:
    """Measure, and return the Markdown section for BENCHMARKS.md."""
    rule = DriftThresholds()
    seeds = [_one_seed(seed, rule) for seed in _SEEDS]
    rates = {k: statistics.median(s[0][k] for s in seeds) for k in seeds[0][0]}
    image_rates = {k: statistics.median(s[1][k] for s in seeds) for k in seeds[0][1]}
    rows = []
    for name in seeds[0][2]:
        cells = [_fmt(statistics.median(s[2][name][i] for s in seeds)) for i in range(3)]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    costs = {n: _check_cost(n, 50) for n in (1_000, 10_000)}
    estimates = [trained_estimates(seed) for seed in _SEEDS]
    return _render(rule, rates, image_rates, rows, costs, estimates, _feature_cost_us())


def _estimate_rows(estimates: list[list[Estimate]]) -> list[str]:
    out = [
        "",
        f"Label-free accuracy estimate (CBPE: mean top probability, from the confidence sum devices send) against the "
        f"true accuracy of a trained model (`train_pdm`, default data, 30 epochs), median over seeds {_SEEDS}:",
        "",
        "| data | estimated | true | error | largest error over seeds |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for index, first in enumerate(estimates[0]):
        runs = [e[index] for e in estimates]
        worst = max((r.error for r in runs), key=abs)
        out.append(
            f"| {first.shift} | {statistics.median(r.estimated for r in runs):.3f} | "
            f"{statistics.median(r.true for r in runs):.3f} | {statistics.median(r.error for r in runs):+.3f} | "
            f"{worst:+.3f} |"
        )
    return out


def _render(
    rule: DriftThresholds,
    rates: dict[str, float],
    image_rates: dict[str, float],
    delay_rows: list[str],
    costs: dict[int, tuple[float, float, int]],
    estimates: list[list[Estimate]],
    feature_us: float,
) -> str:
    head = (
        "## Drift detector\n\n"
        "Command: `make bench` (or `.venv/bin/python -m benchmarks`); the machine is described at the top of this "
        "file.\n\n"
        f"Defaults: PSI warn {rule.psi_warn} / alarm {rule.psi_alarm} (sample-size corrected), KS warn "
        f"{rule.ks_warn} / alarm {rule.ks_alarm}, min samples {rule.min_samples} (effective: values over their "
        "dispersion). Sensor devices: 10 windows per 10 s interval, each device a machine at its own operating "
        "point (±0.5 Hz, ±0.05 load), a new point every 5 s; image devices: 20 images per interval. A device is judged against its own baseline (its "
        f"first {_BASELINE_INTERVALS} intervals, the server's default 30 min), a cohort of {_COHORT} devices "
        "against its devices' baselines added up, or, while they collect them, the package reference (nominal "
        "class only). Sketches made by the agent's IntervalAggregator. "
        f"Medians over seeds {_SEEDS}.\n\n"
    )
    minutes = " | ".join(f"sliding {w * 10 // 60} min" for w in _SLIDING)
    false_rows = [
        f"| drift-free streams: intervals with … (any feature) | {minutes} |",
        "| --- |" + " ---: |" * len(_SLIDING),
    ]
    for label, table in (("sensor", rates), ("image", image_rates)):
        for key, title in (
            ("device", "per device vs own baseline: ALARM"),
            ("device warn", "per device vs own baseline: WARN or ALARM"),
            ("device judged", "per device: every feature judged (not not-enough-data)"),
            ("cohort", "per cohort vs its devices' baselines: ALARM"),
            ("cohort warn", "per cohort vs its devices' baselines: WARN or ALARM"),
            ("cohort judged", "per cohort vs its devices' baselines: every feature judged"),
            ("cohort package", "per cohort vs package reference (devices collecting baselines): ALARM"),
            ("cohort package judged", "per cohort vs package reference: every feature judged"),
        ):
            cells = " | ".join(f"{table[f'{key}, {w}']:.1%}" for w in _SLIDING)
            false_rows.append(f"| {label}, {title} | {cells} |")
    small = [
        "",
        f"Cohorts judged against the package's reference while their devices collect baselines, by size, before the "
        f"rule that only a cohort of {rule.min_cohort_devices} devices or more is (`min_cohort_devices`): the same "
        f"drift-free streams, a sliding {_SMALL_WIDTH * 10 // 60} min window, each device a machine at its own "
        f"operating point, {_SMALL_DRAWS} cohorts of each size drawn from the {_COHORT} devices at random. A few "
        "machines look drifted against the many of the training data:",
        "",
        "| devices in the cohort | " + " | ".join(str(n) for n in _SMALL_COHORTS) + " |",
        "| --- |" + " ---: |" * len(_SMALL_COHORTS),
    ]
    for label, table, kind in (
        ("sensor, a new operating point every 5 windows", rates, ""),
        (f"sensor, every {_SLOW_RECORDING} windows (5 s at the demo's 5 windows/s)", rates, " slow"),
        ("image", image_rates, ""),
    ):
        for key, title in (("package", "checks with an ALARM"), ("package judged", "checks with a feature judged")):
            cells = " | ".join(f"{table[f'{key}{kind} {n}']:.1%}" for n in _SMALL_COHORTS)
            small.append(f"| {label}: {title} | {cells} |")
    delay_head = [
        "",
        f"Detection delay in intervals after the onset (1 = the first drifted interval; the onset is {_ONSET} "
        f"intervals after the devices' baselines), over the server's default 1 h window; never: not within "
        f"{_AFTER_ONSET} intervals:",
        "",
        f"| injected drift | device (median of {_DRIFTING}, own baseline) | cohort, {_DRIFTING} of {_COHORT} "
        f"drifting | cohort of {_DRIFTING}, all drifting |",
        "| --- | ---: | ---: | ---: |",
    ]
    cost = [
        "",
        "Cost of the server's whole periodic check (bucket fill, baselines, statistics, history) on SQLite, 50 "
        "features × 10 bins, 1 h of telemetry every 5 min:",
        "",
        "| devices | telemetry rows | first check (fills every bucket) | periodic check (median of 3) |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for devices, (cold, steady, rows) in costs.items():
        cost.append(f"| {devices:,} | {rows:,} | {cold:.2f} s | {steady:.2f} s |")
    cost += [
        "",
        f"Sensor features on the device: {feature_us:.0f} µs per window (5 channels × 512 samples, batches of 64).",
        "",
    ]
    return head + "\n".join(false_rows + small + delay_head + delay_rows + _estimate_rows(estimates) + cost)

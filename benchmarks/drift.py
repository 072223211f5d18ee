"""Drift detector: false alarms on drift-free streams, detection delay on injected drifts, the label-free accuracy
estimate against the truth, and the cost of the server's whole periodic check.

Sensor devices are machines: each has its own nominal speed (20-40 Hz) and load, and wanders around them (±0.5 Hz,
±0.05 load) with a new operating point every 100 windows (20 windows/s, 10 s intervals). Their sketches are made by
the real IntervalAggregator, so what is scored is what devices send. A device is judged against its own baseline
(its first ``baseline_s`` of telemetry, the server's default 30 min), a cohort of 20 devices against the package
reference built as train/reference.py builds it (nominal-class data only). In the drift scenarios 5 devices of
the cohort drift and 15 do not. Everything is repeated over seeds and the median reported.
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
from edgefleet.sketch import image_features, reference_histogram, sensor_features
from fleet_server.db import make_engine, make_session_factory, upgrade
from fleet_server.drift import DriftThresholds, feature_levels
from fleet_server.drift.settings import DriftSettings
from train.datasets.surfaces import synthetic_images

__all__ = ["run"]

_WINDOWS_PER_INTERVAL: Final = 200  # 10 s at the simulated source's 20 windows/s
_WINDOWS_PER_RECORDING: Final = 100  # as edge_agent.sources.simulated
_IMAGES_PER_INTERVAL: Final = 20  # 10 s of a camera at 2 frames/s
_COHORT: Final = 20
_DRIFTING: Final = 5
_NULL_INTERVALS: Final = 30
_ONSET: Final = 2
_AFTER_ONSET: Final = 12
_SLIDING: Final = (1, 6, 30)  # sliding windows, in intervals: 10 s, 1 min, 5 min
_SEEDS: Final = (0, 1, 2)
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
    return _Profile(manifest, tuple(f.name for f in reference.features), table)


def _reference(features: dict[str, npt.NDArray[np.float64]]) -> ReferenceProfile:
    return ReferenceProfile(
        sample_count=len(next(iter(features.values()))),
        features=[FeatureReference(name=n, histogram=reference_histogram(v)) for n, v in features.items()],
    )


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
    channels = [ChannelSpec(name=name, unit=unit, mean=0.0, std=1.0) for name, unit in CHANNELS]
    names = [c.name for c in channels]
    spec = SensorPreprocessing(channels=channels, window_length=WINDOW_LENGTH, sample_rate_hz=SAMPLE_RATE_HZ)
    return _manifest(spec, _reference(sensor_features(windows, names)))


def _image_profile(images: npt.NDArray[np.uint8]) -> _Profile:
    spec = ImagePreprocessing(height=images.shape[1], width=images.shape[2], mean=(0, 0, 0), std=(1, 1, 1))
    return _manifest(spec, _reference(image_features(images)))


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


def _sensor_device(
    profile: _Profile, rng: np.random.Generator, intervals: int, drift: _SensorInjection | None, onset: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """One machine's baseline (its first 30 min, summed) and the interval sketches after it; ``drift`` applies
    from interval ``onset`` on."""
    machine = _Machine.random(rng)
    baseline_windows = []
    # every operating point of the 30 min, but 1 window in 10 of each: the device's spread is in its operating
    # points; fewer baseline values only make the sample-size correction larger (a conservative baseline)
    for _ in range(_BASELINE_INTERVALS * _WINDOWS_PER_INTERVAL // _WINDOWS_PER_RECORDING):
        recording = machine.recording(rng, None)
        baseline_windows += [recording.window(i, rng) for i in range(0, _WINDOWS_PER_RECORDING, 10)]
    baseline = _count(profile, baseline_windows)
    out = []
    recording = machine.recording(rng, None)
    index = 0
    for interval in range(intervals):
        drifting = drift is not None and interval >= onset
        windows = []
        for _ in range(_WINDOWS_PER_INTERVAL):
            if index >= _WINDOWS_PER_RECORDING:
                recording = machine.recording(rng, drift if drifting else None)
                index = 0
            window = recording.window(index, rng)
            index += 1
            if drifting and isinstance(drift, GainChange | BearingFaultOnset):
                window = drift.apply(window, rng)
            windows.append(window)
        out.append(_count(profile, windows))
    return baseline, np.stack(out)


def _image_device(
    profile: _Profile,
    pool: npt.NDArray[np.uint8],
    rng: np.random.Generator,
    intervals: int,
    drift: Brightness | Blur | None,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    baseline = _count(profile, list(pool[rng.integers(0, len(pool), _BASELINE_INTERVALS * _IMAGES_PER_INTERVAL // 10)]))
    out = []
    for interval in range(intervals):
        images = list(pool[rng.integers(0, len(pool), _IMAGES_PER_INTERVAL)])
        if drift is not None and interval >= _ONSET:
            images = [drift.apply(image, rng) for image in images]
        out.append(_count(profile, images))
    return baseline, np.stack(out)


def _sliding(sketches: Sketches, width: int) -> Sketches:
    """Sums over the last ``width`` intervals (fewer at the start), per device."""
    cumulative = np.cumsum(sketches, axis=1)
    shifted = np.concatenate([np.zeros_like(cumulative[:, :width]), cumulative[:, :-width]], axis=1)
    return np.asarray(cumulative - shifted[:, : cumulative.shape[1]], dtype=np.float64)


def _alarms(reference: npt.NDArray[np.float64], live: Sketches, rule: DriftThresholds) -> npt.NDArray[np.bool_]:
    """(devices, intervals): whether any feature is at ALARM; ``reference`` (features, bins) or per device."""
    return np.asarray(np.asarray(feature_levels(reference, live, rule) == "alarm").any(axis=-1), dtype=bool)


def _warns(reference: npt.NDArray[np.float64], live: Sketches, rule: DriftThresholds) -> npt.NDArray[np.bool_]:
    levels = feature_levels(reference, live, rule)
    return np.asarray(np.asarray((levels == "alarm") | (levels == "warn")).any(axis=-1), dtype=bool)


def _delay(alarms: npt.NDArray[np.bool_]) -> float:
    """Intervals from the onset to the first alarm (1: the onset interval itself); inf if never."""
    hits = np.flatnonzero(alarms[_ONSET:])
    return float(hits[0] + 1) if hits.size else float("inf")


@dataclass(frozen=True, slots=True)
class _Fleet:
    baselines: npt.NDArray[np.float64]  # (devices, features, bins): each device's own
    sketches: Sketches  # (devices, intervals, features, bins)


def _false_alarms(profile: _Profile, null: _Fleet, rule: DriftThresholds) -> dict[str, float]:
    rates = {}
    own = null.baselines[:, None]
    for width in _SLIDING:
        live = _sliding(null.sketches, width)[:, width - 1 :]  # only full windows
        rates[f"device, {width}"] = float(_alarms(own, live, rule).mean())
        rates[f"device warn, {width}"] = float(_warns(own, live, rule).mean())
        rates[f"device vs package, {width}"] = float(_alarms(profile.reference, live, rule).mean())
        cohort = _sliding(null.sketches.sum(axis=0, keepdims=True), width)[:, width - 1 :]
        rates[f"cohort, {width}"] = float(_alarms(profile.reference, cohort, rule).mean())
    return rates


def _delays(profile: _Profile, null: _Fleet, drifted: _Fleet, rule: DriftThresholds, width: int) -> tuple[float, float]:
    """Median per-device delay (against each device's own baseline) and the cohort delay (5 drifting devices among
    15 healthy ones, against the package reference)."""
    alarms = _alarms(drifted.baselines[:, None], _sliding(drifted.sketches, width), rule)
    device = statistics.median(_delay(a) for a in alarms)
    intervals = drifted.sketches.shape[1]
    cohort = drifted.sketches.sum(axis=0) + null.sketches[: _COHORT - _DRIFTING, :intervals].sum(axis=0)
    cohort_delay = _delay(_alarms(profile.reference, _sliding(cohort[None], width), rule)[0])
    return device, cohort_delay


def _fleet(devices: list[tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]]) -> _Fleet:
    return _Fleet(np.stack([b for b, _ in devices]), np.stack([s for _, s in devices]))


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
    null = _fleet([_sensor_device(sensor, rng, _NULL_INTERVALS, None, 0) for _ in range(_COHORT)])
    rates = _false_alarms(sensor, null, rule)
    intervals = _ONSET + _AFTER_ONSET
    delays: dict[str, list[float]] = {}
    for name, drift in _SENSOR_DRIFTS.items():
        drifted = _fleet([_sensor_device(sensor, rng, intervals, drift, _ONSET) for _ in range(_DRIFTING)])
        delays[name] = [d for w in _SLIDING[:2] for d in _delays(sensor, null, drifted, rule, w)]
    images = synthetic_images(per_class=60, size=64, seed=seed)
    good = images.images[images.labels == list(images.label_names).index("good")]
    # a random half of the good images for the reference (train/reference.py: nominal class only), half for devices
    order = rng.permutation(len(good))
    image = _image_profile(good[order[::2]])
    pool = good[order[1::2]]
    image_null = _fleet([_image_device(image, pool, rng, _NULL_INTERVALS, None) for _ in range(_COHORT)])
    image_rates = _false_alarms(image, image_null, rule)
    for name, image_drift in _IMAGE_DRIFTS.items():
        drifted = _fleet([_image_device(image, pool, rng, intervals, image_drift) for _ in range(_DRIFTING)])
        delays[name] = [d for w in _SLIDING[:2] for d in _delays(image, image_null, drifted, rule, w)]
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
        cells = [statistics.median(s[2][name][i] for s in seeds) for i in range(4)]
        rows.append(f"| {name} | {_fmt(cells[0])} / {_fmt(cells[1])} | {_fmt(cells[2])} / {_fmt(cells[3])} |")
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
        f"{rule.ks_warn} / alarm {rule.ks_alarm}, min samples {rule.min_samples}. Sensor devices: 200 windows per "
        "10 s interval, each device a machine at its own operating point (±0.5 Hz, ±0.05 load), a new point every "
        "100 windows; image devices: 20 images per interval. A device is judged against its own baseline (its "
        f"first {_BASELINE_INTERVALS} intervals, the server's default 30 min), a cohort of {_COHORT} devices "
        "against the package reference (nominal class only). Sketches made by the agent's IntervalAggregator. "
        f"Medians over seeds {_SEEDS}.\n\n"
    )
    false_rows = [
        "| drift-free streams: intervals with an alarm (any feature) | sliding 10 s | 1 min | 5 min |",
        "| --- | ---: | ---: | ---: |",
    ]
    for label, table in (("sensor", rates), ("image", image_rates)):
        for key, title in (
            ("device", "per device vs own baseline: ALARM"),
            ("device warn", "per device vs own baseline: WARN or ALARM"),
            ("device vs package", "per device vs package reference (not used): ALARM"),
            ("cohort", "per cohort vs package reference: ALARM"),
        ):
            cells = " | ".join(f"{table[f'{key}, {w}']:.1%}" for w in _SLIDING)
            false_rows.append(f"| {label}, {title} | {cells} |")
    delay_head = [
        "",
        f"Detection delay in intervals after the onset (1 = the first drifted interval), device (median of "
        f"{_DRIFTING}, own baseline) / cohort ({_DRIFTING} of {_COHORT} drifting, package reference):",
        "",
        "| injected drift | sliding 10 s | 1 min |",
        "| --- | ---: | ---: |",
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
    return head + "\n".join(false_rows + delay_head + delay_rows + _estimate_rows(estimates) + cost)

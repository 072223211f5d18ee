"""Drift features of sensor windows and images, the drifts injected into them, and the device counting them."""

from __future__ import annotations

import numpy as np
import pytest

from devices.drifts import BearingFaultOnset, Blur, Brightness, GainChange, Offset
from edge_agent.telemetry import IntervalAggregator, Prediction, ReportContext
from edgefleet.manifest import ArtifactFormat, FeatureReference, ImagePreprocessing, Precision, ReferenceProfile
from edgefleet.messages import SystemStats
from edgefleet.sensor_sim import SAMPLE_RATE_HZ, WINDOW_LENGTH, Recording
from edgefleet.sketch import (
    IMAGE_STATS,
    SENSOR_STATS,
    count_into,
    effective_count,
    image_features,
    reference_histogram,
    sensor_features,
)
from tests.factories import make_manifest

pytestmark = pytest.mark.unit

T = np.arange(WINDOW_LENGTH) / SAMPLE_RATE_HZ


def test_a_sine_has_crest_root_two_kurtosis_one_and_a_half_and_its_power_in_its_band() -> None:
    window = np.stack([np.sin(2 * np.pi * 50 * T) + 2.0, np.sin(2 * np.pi * 1000 * T)])[None]
    features = sensor_features(window, ["low", "high"])
    assert set(features) == {f"{c}.{s}" for c in ("low", "high") for s in SENSOR_STATS}
    assert features["low.mean"][0] == pytest.approx(2.0, abs=1e-9)
    assert features["low.rms"][0] == pytest.approx(np.sqrt(0.5), rel=1e-6)
    assert features["low.peak"][0] == pytest.approx(1.0, abs=1e-3)
    assert features["low.crest"][0] == pytest.approx(np.sqrt(2), rel=1e-3)
    assert features["low.kurtosis"][0] == pytest.approx(1.5, rel=1e-6)
    assert features["low.band0"][0] == pytest.approx(1.0)
    assert features["high.band3"][0] == pytest.approx(1.0)


def test_gaussian_noise_has_kurtosis_three_and_a_flat_channel_gets_zero_ratios() -> None:
    noise = np.random.default_rng(0).normal(size=(20, 1, 4096))
    assert sensor_features(noise, ["n"])["n.kurtosis"].mean() == pytest.approx(3.0, abs=0.1)
    flat = sensor_features(np.ones((1, 1, 64)), ["f"])
    assert flat["f.crest"][0] == 0
    assert flat["f.kurtosis"][0] == 0
    assert flat["f.band0"][0] == 0


def test_injected_sensor_drifts_move_the_features_they_should() -> None:
    rng = np.random.default_rng(1)
    recording = Recording.random(0, rng)
    windows = np.stack([recording.window(i, rng) for i in range(20)])
    before = sensor_features(windows, list("abcde"))

    def after(drift: GainChange | Offset | BearingFaultOnset) -> dict[str, np.ndarray]:
        return sensor_features(np.stack([drift.apply(w, rng) for w in windows]), list("abcde"))

    assert after(GainChange(1.5, (0,)))["a.rms"] == pytest.approx(1.5 * before["a.rms"], rel=1e-5)
    assert after(GainChange(1.5, (0,)))["b.rms"] == pytest.approx(before["b.rms"])
    assert after(Offset(0.3))["c.mean"] == pytest.approx(before["c.mean"] + 0.3, abs=1e-4)
    fault = after(BearingFaultOnset(0.5))
    assert fault["a.kurtosis"].mean() > before["a.kurtosis"].mean() + 1
    assert fault["a.band3"].mean() > before["a.band3"].mean() + 0.2


def test_brightness_and_blur_move_brightness_and_sharpness() -> None:
    rng = np.random.default_rng(2)
    images = rng.integers(60, 200, size=(4, 32, 32, 3), dtype=np.uint8)
    base = image_features(images)
    brighter = image_features(np.stack([Brightness(0.1).apply(i, rng) for i in images]))
    blurred = image_features(np.stack([Blur(2).apply(i, rng) for i in images]))
    assert brighter["brightness"] == pytest.approx(base["brightness"] + 0.1, abs=0.01)
    assert (blurred["sharpness"] < 0.3 * base["sharpness"]).all()
    assert blurred["brightness"] == pytest.approx(base["brightness"], abs=0.01)


def test_the_aggregator_counts_image_features_into_the_reference_bins() -> None:
    rng = np.random.default_rng(3)
    reference_images = rng.integers(0, 256, size=(50, 16, 16, 3), dtype=np.uint8)
    features = image_features(reference_images)
    reference = ReferenceProfile(
        sample_count=50,
        features=[FeatureReference(name=n, histogram=reference_histogram(v)) for n, v in features.items()]
        + [FeatureReference(name="embedding.0", histogram=reference_histogram([0.0, 1.0]))],
    )
    manifest = make_manifest([(ArtifactFormat.ONNX, Precision.FP32)]).model_copy(
        update={
            "preprocessing": ImagePreprocessing(height=16, width=16, mean=(0, 0, 0), std=(1, 1, 1)),
            "reference_profile": reference,
        }
    )
    live = rng.integers(0, 256, size=(21, 16, 16, 3), dtype=np.uint8)
    aggregator = IntervalAggregator(manifest)
    for image in live:
        aggregator.add(image, Prediction(0, 0.9, 1.0))
    message = aggregator.message(
        ReportContext("cam-1", None), seq=1, ts=0.0, interval_s=10.0, system=SystemStats(cpu_percent=0, rss_bytes=0)
    )
    # a feature the agent cannot compute is left out
    assert set(message.sketches) == set(IMAGE_STATS)
    live_features = image_features(live)
    for feature in reference.features[:-1]:
        assert message.sketches[feature.name] == count_into(feature.histogram.edges, live_features[feature.name])


def test_windows_of_one_recording_count_as_about_one_value_in_the_reference() -> None:
    rng = np.random.default_rng(5)
    recordings = [Recording.random(0, rng) for _ in range(40)]
    windows = np.stack([r.window(i, rng) for r in recordings for i in range(8)])
    groups = np.repeat(np.arange(40), 8)
    features = sensor_features(windows, ["vx", "vy", "t", "i", "p"])
    # the mean temperature follows the recording's operating point: 320 windows, about 40 recordings' worth
    temperature = features["t.mean"]
    assert effective_count(reference_histogram(temperature).edges, temperature, groups) < 80
    # independent draws are worth what they number
    noise = rng.normal(size=320)
    assert effective_count(reference_histogram(noise).edges, noise, groups) == pytest.approx(320, rel=0.25)

"""The simulated inspection camera, and a camera device whose lens gets dirty, against a real Mosquitto."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from devices import Fleet
from devices.faults import DirtyLens
from edge_agent.sources import open_source
from edge_agent.sources.settings import SimulatedCameraSettings
from edge_agent.sources.simulated_camera import inspection_image
from edgefleet.manifest import ImagePreprocessing
from edgefleet.messages import TelemetryV1
from edgefleet.sketch import image_features
from tests.agent.conftest import Subscriber, TinyPackage
from tests.devices.tiny_camera import build_tiny_camera_package
from tests.support import wait_until


@pytest.mark.unit
def test_the_simulated_camera_gives_images_at_the_model_size_and_defects_are_darker() -> None:
    spec = ImagePreprocessing(height=24, width=40, mean=(0.5,) * 3, std=(0.25,) * 3)
    stop = threading.Event()
    camera = open_source(SimulatedCameraSettings(kind="simulated_camera", images_per_s=0, seed=3), spec, stop)
    images = [image for image, _ in zip(camera, range(5), strict=False)]
    assert {(i.shape, i.dtype) for i in images} == {((24, 40, 3), np.dtype(np.uint8))}
    for seed in range(10):
        # the same part with and without a defect: a scratch or a spot is a patch of much darker pixels
        good = inspection_image(32, 32, np.random.default_rng(seed)).astype(int)
        bad = inspection_image(32, 32, np.random.default_rng(seed), defect=True).astype(int)
        assert ((good - bad) > 60).sum() >= 5, seed


@pytest.mark.unit
def test_a_dirty_lens_blurs_and_darkens_more_as_it_grows() -> None:
    rng = np.random.default_rng(2)
    images = np.stack([inspection_image(32, 32, rng) for _ in range(20)])
    sharpness = [
        image_features(np.stack([DirtyLens(s).apply(i, rng) for i in images]))["sharpness"].mean()
        for s in (0.0, 0.5, 1.0)
    ]
    brightness = [
        image_features(np.stack([DirtyLens(s).apply(i, rng) for i in images]))["brightness"].mean()
        for s in (0.0, 0.5, 1.0)
    ]
    assert sharpness[0] > sharpness[1] > sharpness[2]
    assert brightness[0] > brightness[1] > brightness[2]


@pytest.mark.integration
def test_a_camera_device_whose_lens_gets_dirty_shows_it_in_its_sketches(tmp_path: Path, mqtt_broker: int) -> None:
    camera: TinyPackage = build_tiny_camera_package(tmp_path / "package")
    watcher = Subscriber(mqtt_broker, "ef/v1/+/telemetry")
    fleet = Fleet(
        2,
        camera.path,
        [camera.public_key],
        "127.0.0.1",
        mqtt_broker,
        tmp_path / "fleet",
        telemetry_interval_s=0.3,
        windows_per_s=30,
        profiles=("x86-gateway",),
        injections=("none", "dirty-lens"),
        fault_s=2.0,
    )
    fleet.start()

    def telemetry(device: str) -> list[TelemetryV1]:
        return [TelemetryV1.model_validate_json(p) for p, _ in watcher.on(f"ef/v1/{device}/telemetry")]

    try:
        wait_until(
            lambda: all(sum(t.inference_count for t in telemetry(d)) >= 150 for d in ("emu-001", "emu-002")),
            timeout_s=60,
        )
    finally:
        fleet.stop()
        watcher.close()

    def last_share_in_lowest_bin(device: str, feature: str) -> float:
        counts = np.sum([t.sketches[feature] for t in telemetry(device)[-3:] if feature in t.sketches], axis=0)
        return float(counts[0] / counts.sum())

    # once the dirt has grown, the dirty device's images are blurred and dark: sharpness and brightness fall
    # below the reference's lowest bin edge, while the clean device's stay spread over the reference bins
    for feature in ("sharpness", "brightness"):
        assert last_share_in_lowest_bin("emu-002", feature) > 0.9, feature
        assert last_share_in_lowest_bin("emu-001", feature) < 0.5, feature

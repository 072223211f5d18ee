"""A simulated inspection camera: synthetic images of machined parts on a line, some with defects (numpy only).

What the emulated fleet's camera devices see. Each image is a lit, brushed metal surface at the model's size,
with a random orientation, texture and light; a ``defect_rate`` share of them carries a dark scratch or a
spot. It does not try to match any training set pixel for pixel: it gives a camera model realistic image
statistics (brightness, contrast, sharpness) for the drift sketches, and something a lens fault can blur.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt

from edge_agent.sources._pacing import Pacer
from edge_agent.sources.settings import SimulatedCameraSettings
from edgefleet.manifest import ImagePreprocessing

__all__ = ["SimulatedCamera", "inspection_image"]

Image = npt.NDArray[np.uint8]


def inspection_image(height: int, width: int, rng: np.random.Generator, *, defect: bool = False) -> Image:
    """One synthetic (height, width, 3) RGB uint8 image of a brushed metal part, with a defect when asked."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    along = x * np.cos(angle) + y * np.sin(angle)
    across = -x * np.sin(angle) + y * np.cos(angle)
    # brushing: fine stripes across the grinding direction, plus grain noise
    stripes = 0.08 * np.sin(2 * np.pi * across / rng.uniform(2.5, 5.0) + rng.uniform(0, 2 * np.pi))
    grain = rng.normal(0.0, 0.05, size=(height, width)).astype(np.float32)
    light = 0.15 * (along / max(height, width) - 0.5) * rng.uniform(-1, 1)
    surface = rng.uniform(0.45, 0.65) + stripes + grain + light
    if defect:
        surface = _with_defect(surface, y, x, rng)
    tint = np.array([1.0, 0.98, 0.95], dtype=np.float32) * rng.uniform(0.95, 1.05, size=3).astype(np.float32)
    rgb = np.clip(surface[..., None] * tint * 255.0, 0, 255)
    return np.asarray(np.rint(rgb), dtype=np.uint8)


def _with_defect(
    surface: npt.NDArray[np.float32], y: npt.NDArray[np.float32], x: npt.NDArray[np.float32], rng: np.random.Generator
) -> npt.NDArray[np.float32]:
    height, width = surface.shape
    cy, cx = rng.uniform(0.2, 0.8) * height, rng.uniform(0.2, 0.8) * width
    if rng.random() < 0.5:
        # a scratch: a dark line segment through (cy, cx)
        angle = rng.uniform(0, np.pi)
        length = rng.uniform(0.3, 0.6) * max(height, width)
        along = (x - cx) * np.cos(angle) + (y - cy) * np.sin(angle)
        across = -(x - cx) * np.sin(angle) + (y - cy) * np.cos(angle)
        mask = (np.abs(across) < 0.8) & (np.abs(along) < length / 2)
        return np.where(mask, surface - 0.35, surface).astype(np.float32)
    # a pit or a stain: a dark disc
    radius = rng.uniform(0.04, 0.1) * max(height, width)
    mask = (y - cy) ** 2 + (x - cx) ** 2 < radius**2
    return np.where(mask, surface * 0.4, surface).astype(np.float32)


class SimulatedCamera:
    """An endless stream of inspection images at the model's size, paced at ``images_per_s`` in real time.

    Like a real camera, it does not wait for a slow consumer: frames whose time has passed are skipped and
    counted in ``dropped`` (and never rendered).
    """

    def __init__(self, settings: SimulatedCameraSettings, spec: ImagePreprocessing, stop: threading.Event) -> None:
        self._settings = settings
        self._spec = spec
        self._rng = np.random.default_rng(settings.seed)
        period_s = 1.0 / settings.images_per_s if settings.images_per_s > 0 else 0.0
        self._pacer = Pacer(period_s, stop)
        self._stop = stop
        self._dropped = 0

    @property
    def dropped(self) -> int:
        return self._dropped

    def __iter__(self) -> Iterator[Image]:
        while not self._stop.is_set():
            if not self._pacer.is_on_time():
                self._dropped += 1
                continue
            if self._stop.is_set():
                return
            defect = bool(self._rng.random() < self._settings.defect_rate)
            yield inspection_image(self._spec.height, self._spec.width, self._rng, defect=defect)

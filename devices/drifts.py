"""Drifts to inject into what a device sees: pure numpy transforms of sensor windows and images.

Each drift is a frozen dataclass with the size of the change as its fields and ``apply(x, rng)``, which returns
a new array and leaves ``x`` alone; when a drift starts is the caller's business (the emulator's fault
schedule, the drift benchmark). A new operating speed cannot be made from a window of the old speed, so
``NewOperatingSpeed`` gives the simulator's recordings at the new speed instead (``recording``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from edgefleet.sensor_sim import SAMPLE_RATE_HZ, Bearing, Recording

__all__ = [
    "BearingFaultOnset",
    "Blur",
    "Brightness",
    "GainChange",
    "ImageDrift",
    "NewOperatingSpeed",
    "Offset",
    "SensorDrift",
]

Window = npt.NDArray[np.float32]
Image = npt.NDArray[np.uint8]
# the structural resonance the bearing impacts ring, as in edgefleet.sensor_sim
_RESONANCE_HZ = 900.0


class SensorDrift(Protocol):
    """Changes one raw sensor window (channels, length)."""

    def apply(self, window: Window, rng: np.random.Generator) -> Window: ...


class ImageDrift(Protocol):
    """Changes one raw image (height, width, 3) uint8."""

    def apply(self, image: Image, rng: np.random.Generator) -> Image: ...


def _channel_mask(window: Window, channels: tuple[int, ...] | None) -> npt.NDArray[np.bool_]:
    mask = np.zeros(window.shape[0], dtype=bool)
    mask[list(channels) if channels is not None else slice(None)] = True
    return mask[:, None]


@dataclass(frozen=True, slots=True)
class GainChange:
    """A sensor's gain drifts (ageing, a loose mount): values times ``factor`` on ``channels`` (None: all)."""

    factor: float
    channels: tuple[int, ...] | None = None

    def apply(self, window: Window, rng: np.random.Generator) -> Window:
        return np.where(_channel_mask(window, self.channels), window * self.factor, window).astype(np.float32)


@dataclass(frozen=True, slots=True)
class Offset:
    """A sensor's zero drifts: ``shift`` (raw units) added on ``channels`` (None: all)."""

    shift: float
    channels: tuple[int, ...] | None = None

    def apply(self, window: Window, rng: np.random.Generator) -> Window:
        return np.where(_channel_mask(window, self.channels), window + self.shift, window).astype(np.float32)


@dataclass(frozen=True, slots=True)
class BearingFaultOnset:
    """An outer-race defect starts: impacts at BPFO ringing the 900 Hz resonance, added to the vibration axes.

    ``severity`` is the impact amplitude in g relative to the simulator's full-grown fault (0.9 g at 1.0);
    ``shaft_hz`` the machine's speed, which sets the impact rate.
    """

    severity: float
    shaft_hz: float = 30.0
    vibration_channels: tuple[int, ...] = (0, 1)
    sample_rate_hz: float = SAMPLE_RATE_HZ

    def apply(self, window: Window, rng: np.random.Generator) -> Window:
        period_s = 1.0 / Bearing().bpfo(self.shaft_hz)
        t = np.arange(window.shape[1]) / self.sample_rate_hz
        since_impact = np.mod(t + rng.uniform(0, period_s), period_s)
        ring = np.exp(-since_impact * 2 * np.pi * _RESONANCE_HZ * 0.05) * np.sin(
            2 * np.pi * _RESONANCE_HZ * since_impact
        )
        impacts = 0.9 * self.severity * ring
        out = window.astype(np.float64)
        for axis, channel in enumerate(self.vibration_channels):
            # the second axis sees the impacts at half the amplitude, as in the simulator
            out[channel] += impacts * (1.0 if axis == 0 else 0.5)
        return out.astype(np.float32)


@dataclass(frozen=True, slots=True)
class NewOperatingSpeed:
    """The machine now runs at shaft speeds in ``speed_hz`` (the training data spans 20-40 Hz)."""

    speed_hz: tuple[float, float]

    def recording(self, fault: int, rng: np.random.Generator) -> Recording:
        """A simulator recording of ``fault`` (an index into FAULTS) at the new speed."""
        return Recording.random(fault, rng, speed_hz=self.speed_hz)


@dataclass(frozen=True, slots=True)
class Brightness:
    """The light changes: ``delta`` (a fraction of full scale, -1 to 1) added to every pixel, clipped."""

    delta: float

    def apply(self, image: Image, rng: np.random.Generator) -> Image:
        return np.asarray(np.clip(image.astype(np.float32) + 255.0 * self.delta, 0, 255), dtype=np.uint8)


@dataclass(frozen=True, slots=True)
class Blur:
    """A dirty or defocused lens: a box blur of ``radius`` pixels (edges repeat), numpy only."""

    radius: int

    def apply(self, image: Image, rng: np.random.Generator) -> Image:
        if self.radius <= 0:
            return np.array(image, dtype=np.uint8)
        size = 2 * self.radius + 1
        padded = np.pad(image.astype(np.float32), ((self.radius,) * 2, (self.radius,) * 2, (0, 0)), mode="edge")
        # separable box filter from cumulative sums: rows, then columns
        rows = np.cumsum(np.pad(padded, ((1, 0), (0, 0), (0, 0))), axis=0)
        vertical = (rows[size:] - rows[:-size]) / size
        cols = np.cumsum(np.pad(vertical, ((0, 0), (1, 0), (0, 0))), axis=1)
        blurred = (cols[:, size:] - cols[:, :-size]) / size
        return np.clip(np.rint(blurred), 0, 255).astype(np.uint8)

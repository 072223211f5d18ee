"""The physics-grounded synthetic machine, as a SensorDataset."""

from __future__ import annotations

from edgefleet.sensor_sim import CHANNELS, FAULTS, SAMPLE_RATE_HZ, simulate_dataset
from train.datasets.dataset import SensorDataset

__all__ = ["synthetic_dataset"]


def synthetic_dataset(
    recordings_per_class: int,
    windows_per_recording: int,
    seed: int,
    *,
    speed_hz: tuple[float, float] = (20.0, 40.0),
    load: tuple[float, float] = (0.3, 1.0),
) -> SensorDataset:
    """Recordings of every fault at random operating points in the given ranges; the same seed, the same data."""
    windows, labels, groups = simulate_dataset(
        recordings_per_class, windows_per_recording, seed, speed_hz=speed_hz, load=load
    )
    return SensorDataset(
        windows, labels, groups, tuple(FAULTS), tuple(CHANNELS), SAMPLE_RATE_HZ, source=f"synthetic (seed {seed})"
    )

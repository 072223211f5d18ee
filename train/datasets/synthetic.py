"""The physics-grounded synthetic machine, as a SensorDataset."""

from __future__ import annotations

import numpy as np

from edgefleet.sensor_sim import CHANNELS, FAULTS, SAMPLE_RATE_HZ, simulate_dataset, simulate_run_to_failure
from train.datasets.dataset import RulTargets, SensorDataset

__all__ = ["run_to_failure_dataset", "synthetic_dataset"]


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


def run_to_failure_dataset(
    runs_per_fault: int, seed: int, *, every_h: float = 2.0, rul_cap_h: float = 80.0
) -> SensorDataset:
    """Machines of every fault run from healthy to failure, a window every ``every_h`` hours, RUL capped."""
    windows, labels, groups, rul = simulate_run_to_failure(runs_per_fault, seed, every_h=every_h)
    return SensorDataset(
        windows,
        labels,
        groups,
        tuple(FAULTS),
        tuple(CHANNELS),
        SAMPLE_RATE_HZ,
        source=f"synthetic runs to failure (seed {seed})",
        rul=RulTargets(np.minimum(rul, rul_cap_h), rul_cap_h, "h"),
    )

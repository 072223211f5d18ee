"""Synthetic rotating-machine sensor windows grounded in physics, shared by training and device simulators.

It lives with the contracts (and uses numpy) because the model is trained on exactly the signal that
emulated devices later feed it: the trainer and the agent's simulated source must not drift apart.

Physics, per recording (one machine at one operating point):
- shaft speed ``f_r`` and load vary between recordings; vibration (two accelerometer axes, in g) holds
  the shaft harmonics: imbalance raises 1x (force grows with speed squared), misalignment raises 2x
  (and 3x), looseness raises a comb of harmonics and half-orders;
- bearing defects are impulse trains at the defect frequency computed from the bearing geometry, each
  impulse ringing a structural resonance: BPFO for the outer race; BPFI for the inner race,
  amplitude-modulated at the shaft speed as the defect turns through the load zone; twice BSF for a
  ball (it strikes both races once per spin), modulated at FTF as the cage carries it round;
- temperature follows load and the friction of a fault; motor current carries the supply frequency
  with an amplitude that follows load, and sidebands at supply ± shaft speed when the rotor is
  unbalanced or misaligned (motor current signature analysis); the pump's outlet pressure follows
  speed squared and load (affinity laws), with a vane-pass ripple that looseness amplifies;
- every sensor has noise, an offset and a gain error that stay fixed for the recording.

Run to failure (``Trajectory``): a machine runs healthy until a fault starts, then the fault's severity
grows exponentially (crack and spall growth accelerate with their own size, as in Paris' law) until it
reaches the failure level; load wanders from snapshot to snapshot. Each snapshot is one window with its
remaining useful life in hours.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar, Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "CHANNELS",
    "FAULTS",
    "SAMPLE_RATE_HZ",
    "WINDOW_LENGTH",
    "Bearing",
    "Recording",
    "Trajectory",
    "simulate_dataset",
    "simulate_run_to_failure",
]

SAMPLE_RATE_HZ: Final = 2560.0
WINDOW_LENGTH: Final = 512
CHANNELS: Final = (
    ("accel_x", "g"),
    ("accel_y", "g"),
    ("temperature", "degC"),
    ("current", "A"),
    ("pressure", "bar"),
)
FAULTS: Final = (
    "normal",
    "imbalance",
    "misalignment",
    "looseness",
    "bearing_outer",
    "bearing_inner",
    "bearing_ball",
)
_SUPPLY_HZ: Final = 50.0
_RESONANCE_HZ: Final = 900.0

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Bearing:
    """Rolling-element bearing geometry (defaults: a 6205 deep-groove ball bearing)."""

    balls: int = 9
    ball_diameter_mm: float = 7.94
    pitch_diameter_mm: float = 39.04
    contact_angle_rad: float = 0.0

    def _ratio(self) -> float:
        return self.ball_diameter_mm / self.pitch_diameter_mm * float(np.cos(self.contact_angle_rad))

    def bpfo(self, shaft_hz: float) -> float:
        """Ball pass frequency, outer race."""
        return self.balls / 2 * shaft_hz * (1 - self._ratio())

    def bpfi(self, shaft_hz: float) -> float:
        """Ball pass frequency, inner race."""
        return self.balls / 2 * shaft_hz * (1 + self._ratio())

    def bsf(self, shaft_hz: float) -> float:
        """Ball spin frequency."""
        return self.pitch_diameter_mm / (2 * self.ball_diameter_mm) * shaft_hz * (1 - self._ratio() ** 2)

    def ftf(self, shaft_hz: float) -> float:
        """Fundamental train (cage) frequency."""
        return shaft_hz / 2 * (1 - self._ratio())


@dataclass(frozen=True, slots=True)
class Recording:
    """One machine at one operating point; ``window`` cuts consecutive windows from it."""

    fault: int
    speed_hz: float
    load: float
    severity: float
    gain: tuple[float, ...]
    offset: tuple[float, ...]
    phase: float
    bearing: Bearing = Bearing()

    @classmethod
    def random(
        cls,
        fault: int,
        rng: np.random.Generator,
        *,
        speed_hz: tuple[float, float] = (20.0, 40.0),
        load: tuple[float, float] = (0.3, 1.0),
    ) -> Recording:
        """A recording of ``fault`` (an index into FAULTS) at a random operating point and sensor error."""
        n = len(CHANNELS)
        return cls(
            fault=fault,
            speed_hz=float(rng.uniform(*speed_hz)),
            load=float(rng.uniform(*load)),
            severity=float(rng.uniform(0.5, 1.0)),
            gain=tuple(float(g) for g in rng.normal(1.0, 0.03, n)),
            offset=tuple(float(o) for o in rng.normal(0.0, 0.02, n)),
            phase=float(rng.uniform(0, 2 * np.pi)),
        )

    def window(self, index: int, rng: np.random.Generator) -> FloatArray:
        """Window number ``index`` of this recording, shape (channels, WINDOW_LENGTH), float32."""
        t = (index * WINDOW_LENGTH + np.arange(WINDOW_LENGTH)) / SAMPLE_RATE_HZ
        vib_x, vib_y = self._vibration(t, rng)
        temperature = self._temperature(rng) + rng.normal(0, 0.05, t.shape)
        current = self._current(t) + rng.normal(0, 0.05, t.shape)
        pressure = self._pressure(t) + rng.normal(0, 0.01, t.shape)
        raw = np.stack([vib_x, vib_y, temperature, current, pressure])
        gain = np.asarray(self.gain)[:, None]
        offset = np.asarray(self.offset)[:, None]
        scaled: FloatArray = (raw * gain + offset).astype(np.float32)
        return scaled

    def _vibration(self, t: npt.NDArray[np.float64], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        name = FAULTS[self.fault]
        w = 2 * np.pi * self.speed_hz
        speed_sq = (self.speed_hz / 30.0) ** 2
        s = self.severity
        # a healthy machine still has a little residual imbalance and misalignment
        amp1 = 0.05 * speed_sq + (0.6 * s * speed_sq if name == "imbalance" else 0.0)
        amp2 = 0.03 + (0.5 * s if name == "misalignment" else 0.0)
        amp3 = 0.01 + (0.2 * s if name == "misalignment" else 0.0)
        x = amp1 * np.sin(w * t + self.phase) + amp2 * np.sin(2 * w * t) + amp3 * np.sin(3 * w * t)
        # on the other axis, imbalance shows 90 degrees later; misalignment's 2x is in phase across axes
        y = amp1 * np.cos(w * t + self.phase) + amp2 * np.sin(2 * w * t + 0.2) + amp3 * np.sin(3 * w * t)
        if name == "looseness":
            for k in range(1, 10):
                a = 0.12 * s / k**0.5
                x += a * np.sin(k * w * t + 0.7 * k) + 0.5 * a * np.sin((k - 0.5) * w * t)
                y += 0.6 * a * np.sin(k * w * t + 1.3 * k)
        if name.startswith("bearing_"):
            impacts = self._bearing_impacts(t, name)
            x += impacts
            y += 0.5 * impacts
        noise = 0.03
        return x + rng.normal(0, noise, t.shape), y + rng.normal(0, noise, t.shape)

    def _bearing_impacts(self, t: npt.NDArray[np.float64], name: str) -> npt.NDArray[np.float64]:
        shaft, phase = self.speed_hz, self.phase
        if name == "bearing_outer":
            defect_hz, zone = self.bearing.bpfo(shaft), np.ones_like(t)
        elif name == "bearing_inner":
            defect_hz = self.bearing.bpfi(shaft)
            zone = 0.6 + 0.4 * np.cos(2 * np.pi * shaft * t + phase)
        else:
            defect_hz = 2 * self.bearing.bsf(shaft)
            zone = 0.5 + 0.5 * np.cos(2 * np.pi * self.bearing.ftf(shaft) * t + phase)
        period = 1.0 / defect_hz
        since_impact = np.mod(t + phase / (2 * np.pi) * period, period)
        ring = np.exp(-since_impact * 2 * np.pi * _RESONANCE_HZ * 0.05) * np.sin(
            2 * np.pi * _RESONANCE_HZ * since_impact
        )
        return np.asarray(0.9 * self.severity * zone * ring, dtype=np.float64)

    def _temperature(self, rng: np.random.Generator) -> float:
        friction = {
            "bearing_outer": 6.0,
            "bearing_inner": 8.0,
            "bearing_ball": 7.0,
            "misalignment": 4.0,
            "looseness": 2.0,
        }
        heat = friction.get(FAULTS[self.fault], 0.0) * self.severity
        return 30.0 + 25.0 * self.load + heat + float(rng.normal(0, 0.5))

    def _pressure(self, t: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        # a centrifugal pump's head grows with speed squared (affinity laws) and falls as flow (load) rises;
        # each impeller vane passing the outlet adds a ripple, which looseness lets grow
        head = 2.5 * (self.speed_hz / 30.0) ** 2 * (1.2 - 0.4 * self.load)
        vanes = 5
        ripple = 0.02 + (0.08 * self.severity if FAULTS[self.fault] == "looseness" else 0.0)
        return np.asarray(head * (1 + ripple * np.sin(2 * np.pi * vanes * self.speed_hz * t)), dtype=np.float64)

    def _current(self, t: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        amplitude = 2.0 + 6.0 * self.load
        current = amplitude * np.sin(2 * np.pi * _SUPPLY_HZ * t)
        if FAULTS[self.fault] in ("imbalance", "misalignment"):
            side = 0.08 * amplitude * self.severity
            for sign in (-1.0, 1.0):
                current += side * np.sin(2 * np.pi * (_SUPPLY_HZ + sign * self.speed_hz) * t)
        return np.asarray(current, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class Trajectory:
    """One machine from healthy to failure: ``fault`` starts at ``onset_h`` and grows by ``growth_per_h``."""

    machine: Recording
    onset_h: float
    growth_per_h: float

    ONSET_SEVERITY: ClassVar[float] = 0.03
    FAILURE_SEVERITY: ClassVar[float] = 1.0

    @classmethod
    def random(
        cls,
        fault: int,
        rng: np.random.Generator,
        *,
        onset_h: tuple[float, float] = (40.0, 150.0),
        degradation_h: tuple[float, float] = (70.0, 110.0),
        speed_hz: tuple[float, float] = (20.0, 40.0),
    ) -> Trajectory:
        """A run of ``fault`` (not "normal") that starts after ``onset_h`` and fails ``degradation_h`` later."""
        if FAULTS[fault] == "normal":
            raise ValueError("a run to failure needs a fault")
        hours_to_failure = float(rng.uniform(*degradation_h))
        return cls(
            machine=Recording.random(fault, rng, speed_hz=speed_hz),
            onset_h=float(rng.uniform(*onset_h)),
            growth_per_h=float(np.log(cls.FAILURE_SEVERITY / cls.ONSET_SEVERITY)) / hours_to_failure,
        )

    @property
    def life_h(self) -> float:
        """Hours from the start of the run to failure."""
        return self.onset_h + float(np.log(self.FAILURE_SEVERITY / self.ONSET_SEVERITY)) / self.growth_per_h

    def severity(self, hour: float) -> float:
        if hour < self.onset_h:
            return 0.0
        return self.ONSET_SEVERITY * float(np.exp(self.growth_per_h * (hour - self.onset_h)))

    def snapshot(self, hour: float, rng: np.random.Generator) -> tuple[FloatArray, int, float]:
        """A window at ``hour`` with its true class and remaining useful life in hours."""
        severity = self.severity(hour)
        fault = self.machine.fault if severity > 0 else 0
        load = float(np.clip(self.machine.load + rng.normal(0, 0.08), 0.2, 1.0))
        state = replace(self.machine, fault=fault, severity=severity, load=load)
        return state.window(int(hour * 3600 * SAMPLE_RATE_HZ) // WINDOW_LENGTH, rng), fault, self.life_h - hour


def simulate_run_to_failure(
    runs_per_fault: int, seed: int, *, every_h: float = 2.0, speed_hz: tuple[float, float] = (20.0, 40.0)
) -> tuple[FloatArray, npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Snapshots every ``every_h`` hours of runs to failure of every fault: windows, labels, run ids and RUL.

    Shapes (N, C, L), (N,), (N,), (N,); the same seed gives the same data.
    """
    rng = np.random.default_rng(seed)
    windows, labels, groups, rul = [], [], [], []
    run = 0
    for fault in range(1, len(FAULTS)):
        for _ in range(runs_per_fault):
            trajectory = Trajectory.random(fault, rng, speed_hz=speed_hz)
            for hour in np.arange(0.0, trajectory.life_h, every_h):
                window, label, remaining = trajectory.snapshot(float(hour), rng)
                windows.append(window)
                labels.append(label)
                groups.append(run)
                rul.append(remaining)
            run += 1
    return (
        np.stack(windows),
        np.asarray(labels, dtype=np.int64),
        np.asarray(groups, dtype=np.int64),
        np.asarray(rul, dtype=np.float32),
    )


def simulate_dataset(
    recordings_per_class: int,
    windows_per_recording: int,
    seed: int,
    *,
    speed_hz: tuple[float, float] = (20.0, 40.0),
    load: tuple[float, float] = (0.3, 1.0),
) -> tuple[FloatArray, npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Windows, labels and recording ids, shapes (N, C, L), (N,), (N,); the same seed gives the same data."""
    rng = np.random.default_rng(seed)
    windows, labels, groups = [], [], []
    group = 0
    for fault in range(len(FAULTS)):
        for _ in range(recordings_per_class):
            recording = Recording.random(fault, rng, speed_hz=speed_hz, load=load)
            for index in range(windows_per_recording):
                windows.append(recording.window(index, rng))
                labels.append(fault)
                groups.append(group)
            group += 1
    return np.stack(windows), np.asarray(labels, dtype=np.int64), np.asarray(groups, dtype=np.int64)

"""The faults the fleet emulator injects into a device, by name (``edgefleet fleet emulate --inject NAME``).

Each device gets one ``Injection``: a name, when it starts (``after_s`` after the fleet starts) and how long
it lasts or takes to grow (``duration_s``). The kinds:

- what the device sees: ``gain``, ``offset``, ``bearing-onset`` (a step) and ``bearing-gradual`` (a defect
  growing from nothing to full size over ``duration_s``) change its simulated sensor's windows;
  ``dirty-lens`` blurs and darkens its simulated camera's images, more and more over ``duration_s``
  (devices.drifts makes the changes);
- its network: ``partition`` cuts its own proxy to the broker for ``duration_s``; ``slow-download`` and
  ``cut-download`` route its package downloads through a proxy that throttles them or drops them mid-file;
- its broker: ``broker-restart`` stops the broker the fleet started for ``duration_s`` (every device sees it);
- its disk: ``disk-full`` gives it a small disk of its own as its data folder and fills it;
- its process: ``crash-mid-update`` runs it as its own ``edgefleet-agent`` process, killed with SIGKILL at
  an update step (``EDGEFLEET_FAILPOINT``) and started again, as systemd would.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final, Protocol

import numpy as np
import numpy.typing as npt

from devices.drifts import BearingFaultOnset, Blur, Brightness, GainChange, Offset, SensorDrift
from devices.netcut import CuttableProxy, Shaping
from edge_agent.sources import Source
from edgefleet.errors import InputError

__all__ = [
    "ALL_FAULTS",
    "BROKER_FAULTS",
    "DOWNLOAD_FAULTS",
    "IMAGE_FAULTS",
    "NETWORK_FAULTS",
    "PROCESS_FAULTS",
    "SENSOR_FAULTS",
    "DirtyLens",
    "DriftingSource",
    "Injection",
    "check_injections",
    "drift_schedule",
    "schedule_cut",
]

# sizes a cohort's drift alarm must catch: the training data's sensor gains and offsets stay within a few %
SENSOR_FAULTS: Final[dict[str, SensorDrift]] = {
    "gain": GainChange(1.8, channels=(0, 1)),
    "offset": Offset(2.0),
    "bearing-onset": BearingFaultOnset(0.6),
}
# faults that grow from nothing to full size over the injection's duration
GRADUAL_SENSOR_FAULTS: Final = ("bearing-gradual",)
IMAGE_FAULTS: Final = ("dirty-lens",)
NETWORK_FAULTS: Final = ("partition",)
DOWNLOAD_FAULTS: Final[dict[str, Shaping]] = {
    # a weak cellular link: a 1 MB package takes about 20 s
    "slow-download": Shaping(rate_bytes_s=50_000),
    # a link that fails three times mid-file: the agent resumes each time from where it was (HTTP Range)
    "cut-download": Shaping(cut_after_bytes=64 * 1024, cuts=3),
}
BROKER_FAULTS: Final = ("broker-restart",)
DISK_FAULTS: Final = ("disk-full",)
PROCESS_FAULTS: Final = ("crash-mid-update",)
ALL_FAULTS: Final = (
    "none",
    *SENSOR_FAULTS,
    *GRADUAL_SENSOR_FAULTS,
    *IMAGE_FAULTS,
    *NETWORK_FAULTS,
    *DOWNLOAD_FAULTS,
    *BROKER_FAULTS,
    *DISK_FAULTS,
    *PROCESS_FAULTS,
)


class _Drift(Protocol):
    def apply(self, x: Any, rng: np.random.Generator) -> Any: ...


@dataclass(frozen=True, slots=True)
class Injection:
    """One fault for one device: which, when it starts (seconds after the device starts) and how long it lasts."""

    name: str
    after_s: float = 0.0
    duration_s: float = 30.0

    def progress(self, elapsed_s: float) -> float:
        """How far the fault has grown ``elapsed_s`` after the device started: 0 before it starts, then up to 1."""
        if elapsed_s < self.after_s:
            return 0.0
        if self.duration_s <= 0:
            return 1.0
        return min(1.0, (elapsed_s - self.after_s) / self.duration_s)


@dataclass(frozen=True, slots=True)
class DirtyLens:
    """Dirt on the lens: a blur of up to ``max_blur_px`` pixels and up to ``max_darkening`` less light, times
    ``severity`` (0 to 1)."""

    severity: float
    max_blur_px: int = 3
    max_darkening: float = 0.25

    def apply(self, image: npt.NDArray[np.uint8], rng: np.random.Generator) -> npt.NDArray[np.uint8]:
        blurred = Blur(round(self.max_blur_px * self.severity)).apply(image, rng)
        return Brightness(-self.max_darkening * self.severity).apply(blurred, rng)


def check_injections(names: tuple[str, ...]) -> None:
    """Raise InputError naming the known faults when one of ``names`` is not one of them."""
    unknown = [n for n in names if n not in ALL_FAULTS]
    if unknown:
        raise InputError(f"unknown injected faults {unknown}", hint=f"choose from: {', '.join(ALL_FAULTS)}")


def drift_schedule(injection: Injection) -> Callable[[float], _Drift | None] | None:
    """What changes the device's inputs ``t`` seconds after it started (None: nothing yet), or None when the
    fault is not about its inputs."""
    step = SENSOR_FAULTS.get(injection.name)
    if step is not None:
        return lambda t: step if t >= injection.after_s else None
    if injection.name == "bearing-gradual":
        full = SENSOR_FAULTS["bearing-onset"]
        assert isinstance(full, BearingFaultOnset)

        def bearing(t: float) -> _Drift | None:
            grown = injection.progress(t)
            return BearingFaultOnset(full.severity * grown) if grown > 0 else None

        return bearing
    if injection.name == "dirty-lens":

        def lens(t: float) -> _Drift | None:
            grown = injection.progress(t)
            return DirtyLens(grown) if grown > 0 else None

        return lens
    return None


class DriftingSource:
    """Yields what ``inner`` yields, changed by what ``schedule`` says at each input's time since the first (since
    ``armed`` was set, when one is given)."""

    def __init__(
        self,
        inner: Source[Any],
        schedule: Callable[[float], _Drift | None],
        seed: int,
        armed: threading.Event | None = None,
    ) -> None:
        self._inner = inner
        self._schedule = schedule
        self._rng = np.random.default_rng(seed)
        self._armed = armed

    @property
    def dropped(self) -> int:
        return self._inner.dropped

    def __iter__(self) -> Iterator[npt.NDArray[Any]]:
        started: float | None = None
        for item in self._inner:
            if self._armed is not None and not self._armed.is_set():
                yield item  # held back: the schedule's clock has not started
                continue
            started = time.monotonic() if started is None else started
            drift = self._schedule(time.monotonic() - started)
            yield item if drift is None else drift.apply(item, self._rng)


def schedule_cut(proxy: CuttableProxy, injection: Injection, stop: threading.Event) -> threading.Thread:
    """Cut ``proxy`` from ``injection.after_s`` for ``injection.duration_s`` on a thread; ``stop`` ends it early."""

    def _run() -> None:
        if stop.wait(injection.after_s):
            return
        proxy.cut()
        stop.wait(injection.duration_s)
        proxy.restore()

    thread = threading.Thread(target=_run, name=f"fault-partition-{proxy.port}", daemon=True)
    thread.start()
    return thread

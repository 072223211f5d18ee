"""The device's own figures: CPU use of this process, its resident memory, and the SoC temperature."""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path

from edgefleet.messages import SystemStats

__all__ = ["SystemProbe"]

_THERMAL = Path("/sys/class/thermal/thermal_zone0/temp")


class SystemProbe:
    """Reads the figures; CPU % is over the time since the previous reading."""

    def __init__(self) -> None:
        self._last_cpu_s = self._cpu_s()
        self._last_wall_s = time.monotonic()

    @staticmethod
    def _cpu_s() -> float:
        times = os.times()
        return times.user + times.system

    def read(self) -> SystemStats:
        cpu_s, wall_s = self._cpu_s(), time.monotonic()
        elapsed = max(wall_s - self._last_wall_s, 1e-9)
        percent = 100.0 * (cpu_s - self._last_cpu_s) / elapsed
        self._last_cpu_s, self._last_wall_s = cpu_s, wall_s
        return SystemStats(cpu_percent=max(percent, 0.0), rss_bytes=_rss_bytes(), temperature_c=_temperature_c())


def _rss_bytes() -> int:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        # no /proc (not Linux): the peak is the best figure the standard library has
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _temperature_c() -> float | None:
    try:
        return int(_THERMAL.read_text().strip()) / 1000.0
    except (OSError, ValueError):
        return None

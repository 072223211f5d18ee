"""Fleet emulation at scale: N emulated devices (the real agent code, one process) against Mosquitto.

For 100, 500 and 1,000 devices with telemetry every 10 s it measures, after every device is online and a
warm-up interval has passed, over a few telemetry intervals: CPU seconds per device-second (from
/proc/self/stat, so devices per core = 1 / that), resident memory per device (the process's RSS growth over
the fleet's start, divided by N) and the fraction of the telemetry messages expected in the window that a bare
Mosquitto subscriber received. Devices read 1 window every 5 s (``WINDOWS_PER_S``): the scale figure is about
the fleet machinery (connections, threads, outboxes, telemetry), not about inference, whose cost per window
is measured by the agent benchmark; at 20 windows/s 1,000 devices would be 20,000 inferences/s on 2 cores.

    python -m benchmarks.fleet [N ...]
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from benchmarks._services import mosquitto, wait_for
from devices import Fleet
from devices.shards import ShardedFleet
from edgefleet.messages import TelemetryV1

__all__ = ["FleetFigures", "measure", "run"]

SIZES: Final = (100, 500, 1000)
INTERVAL_S: Final = 10.0
WINDOWS_PER_S: Final = 0.2
MEASURE_S: Final = 60.0
_TICKS: Final = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class FleetFigures:
    devices: int
    start_s: float
    cpu_per_device_s: float  # CPU seconds per device-second
    processes: int
    rss_per_device_mb: float
    threads: int
    open_files: int
    delivered: float  # telemetry received / expected over the measured window
    lost_seqs: int  # gaps in the seqs received, over all devices


def _cpu_s(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _TICKS


def _status(pids: list[int], key: str) -> int:
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                total += int(line.split()[1])
    return total


class _Counter:
    """A bare subscriber counting telemetry per device and keeping every seq."""

    def __init__(self, port: int) -> None:
        self.seqs: dict[str, list[int]] = defaultdict(list)
        self.times: dict[str, list[float]] = defaultdict(list)
        self._lock = threading.Lock()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-fleet-counter")
        subscribed = threading.Event()
        self._client.on_message = self._keep
        self._client.on_subscribe = lambda *_args: subscribed.set()
        self._client.connect("127.0.0.1", port)
        self._client.subscribe("ef/v1/+/telemetry", qos=1)
        self._client.loop_start()
        if not subscribed.wait(30):
            raise RuntimeError("the broker did not acknowledge the benchmark's subscription")

    def _keep(self, _client: object, _userdata: object, message: mqtt.MQTTMessage) -> None:
        parsed = TelemetryV1.model_validate_json(message.payload)
        now = time.monotonic()
        with self._lock:
            self.seqs[parsed.device_id].append(parsed.seq)
            self.times[parsed.device_id].append(now)

    def received_between(self, start: float, end: float) -> int:
        with self._lock:
            return sum(sum(1 for t in times if start <= t < end) for times in self.times.values())

    def lost(self) -> int:
        with self._lock:
            return sum(max(s) - min(s) + 1 - len(set(s)) for s in self.seqs.values() if s)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def measure(devices: int, package: Path, key: Path, root: Path, measure_s: float = MEASURE_S) -> FleetFigures:
    """Run ``devices`` emulated devices against a fresh Mosquitto and measure them (see the module's docstring)."""
    folder = root / f"n{devices}"
    (folder / "broker").mkdir(parents=True)
    with mosquitto(folder / "broker") as port:
        counter = _Counter(port)
        fleet = ShardedFleet(
            Fleet(
                devices,
                package,
                [key],
                "127.0.0.1",
                port,
                folder / "fleet",
                telemetry_interval_s=INTERVAL_S,
                windows_per_s=WINDOWS_PER_S,
            )
        )
        started = time.monotonic()
        fleet.start()
        try:
            start_s = time.monotonic() - started
            # every device has reported once: the fleet is in its steady state
            wait_for(lambda: len(counter.seqs) >= devices, timeout_s=INTERVAL_S * 18)
            time.sleep(INTERVAL_S)
            pids = fleet.pids
            cpu0, t0 = _cpu_s(pids), time.monotonic()
            time.sleep(measure_s)
            cpu1, t1 = _cpu_s(pids), time.monotonic()
            rss_mb = _status(pids, "VmRSS") / 1024
            threads = _status(pids, "Threads")
            open_files = sum(len(os.listdir(f"/proc/{pid}/fd")) for pid in pids)
            # messages measured in the window may still be on their way: wait a little before counting
            time.sleep(2.0)
            received = counter.received_between(t0, t1)
        finally:
            fleet.stop()
            counter.close()
    expected = devices * (t1 - t0) / INTERVAL_S
    return FleetFigures(
        devices=devices,
        start_s=start_s,
        cpu_per_device_s=(cpu1 - cpu0) / (t1 - t0) / devices,
        processes=len(pids),
        rss_per_device_mb=(rss_mb - len(pids) * _baseline_rss_mb()) / devices,
        threads=threads,
        open_files=open_files,
        delivered=received / expected,
        lost_seqs=counter.lost(),
    )


def _baseline_rss_mb() -> float:
    """The RSS of a shard process before its first device: Python, numpy, onnxruntime, paho and pydantic loaded."""
    code = (
        "import devices, onnxruntime, numpy; "
        "print(next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmRSS:')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(done.stdout) / 1024


def _package(root: Path) -> tuple[Path, Path]:
    # the agent tests' tiny signed sensor classifier: the fleet's cost, not a model's, is measured here
    from tests.agent.tiny import build_tiny_package

    tiny = build_tiny_package(root / "package")
    return tiny.path, tiny.public_key


def _raise_open_files() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))


def run(sizes: tuple[int, ...] = SIZES) -> str:
    """The BENCHMARKS.md section."""
    _raise_open_files()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        root = Path(tmp)
        package, key = _package(root)
        for devices in sizes:
            figures = measure(devices, package, key, root)
            rows.append(figures)
            sys.stderr.write(f"{figures}\n")
    lines = [
        "## Fleet emulation",
        "",
        f"`python -m benchmarks.fleet` (part of `make bench`): N emulated devices (real agent code, one process, "
        f"profiles mixed) against Mosquitto, telemetry every {INTERVAL_S:g} s, each device reading "
        f"{WINDOWS_PER_S:g} windows/s of its simulated sensor; measured over {MEASURE_S:g} s after every device "
        "reported. CPU from /proc/self/stat, memory as RSS growth over the fleet's start; delivered = telemetry "
        "messages a bare subscriber received in the window / devices x window / interval. Devices run in processes "
        "of at most 120 (devices.shards: paho-mqtt's select() loop cannot watch file descriptors past 1024); "
        "memory per device = (summed RSS of the shard processes - processes x the RSS of a bare one with the "
        "agent's imports) / devices.",
        "",
        "| devices | processes | start (s) | CPU s per device-second | devices per core | RSS per device (MB) "
        "| threads | open files | delivered | lost seqs |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for f in rows:
        per_core = 1 / f.cpu_per_device_s if f.cpu_per_device_s > 0 else float("inf")
        lines.append(
            f"| {f.devices} | {f.processes} | {f.start_s:.0f} | {f.cpu_per_device_s:.5f} | {per_core:,.0f} | "
            f"{f.rss_per_device_mb:.2f} | {f.threads} | {f.open_files} | {f.delivered:.3f} | {f.lost_seqs} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(run(tuple(int(n) for n in sys.argv[1:]) or SIZES))

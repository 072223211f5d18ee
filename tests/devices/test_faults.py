"""Injected faults on emulated devices, against a real Mosquitto: a partition heals without losing telemetry, and a
drifting sensor shows in the device's sketches."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from devices import Fleet
from edgefleet.messages import EventV1, TelemetryV1
from tests.agent.conftest import Subscriber, TinyPackage
from tests.infra import mosquitto
from tests.support import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[int]:
    folder = tmp_path / "mosquitto"
    folder.mkdir()
    with mosquitto(folder) as port:
        yield port


def _telemetry(watcher: Subscriber, device: str) -> list[TelemetryV1]:
    return [TelemetryV1.model_validate_json(p) for p, _ in watcher.on(f"ef/v1/{device}/telemetry")]


def _fleet(tiny: TinyPackage, tmp_path: Path, port: int, devices: int, **changes: Any) -> Fleet:
    return Fleet(
        devices,
        tiny.path,
        [tiny.public_key],
        "127.0.0.1",
        port,
        tmp_path / "fleet",
        telemetry_interval_s=0.2,
        windows_per_s=50,
        profiles=("x86-gateway",),
        **changes,
    )


def test_a_partitioned_device_delivers_its_stored_telemetry_after_it_heals(
    tiny_package: TinyPackage, tmp_path: Path, broker: int
) -> None:
    watcher = Subscriber(broker, "ef/v1/+/telemetry")
    fleet = _fleet(tiny_package, tmp_path, broker, 1, injections=("partition",), inject_after_s=1.0, fault_s=2.0)
    fleet.start()
    try:
        proxy = fleet.proxies["emu-001"]
        wait_until(lambda: proxy.is_cut, timeout_s=20)
        during = len(_telemetry(watcher, "emu-001"))
        wait_until(lambda: not proxy.is_cut, timeout_s=20)
        # intervals measured while cut arrive afterwards, in order and none missing
        wait_until(lambda: len(_telemetry(watcher, "emu-001")) >= during + 12, timeout_s=30)
    finally:
        fleet.stop()
        watcher.close()
    seqs = sorted({t.seq for t in _telemetry(watcher, "emu-001")})
    assert seqs == list(range(seqs[0], seqs[-1] + 1))
    assert during >= 1


def test_a_drifting_sensor_shows_in_the_device_sketches(tiny_package: TinyPackage, tmp_path: Path, broker: int) -> None:
    watcher = Subscriber(broker, "ef/v1/+/telemetry")
    fleet = _fleet(tiny_package, tmp_path, broker, 2, injections=("none", "offset"))
    fleet.start()
    try:
        wait_until(
            lambda: all(sum(t.inference_count for t in _telemetry(watcher, d)) >= 40 for d in ("emu-001", "emu-002")),
            timeout_s=30,
        )
    finally:
        fleet.stop()
        watcher.close()

    def histogram(device: str, feature: str) -> np.ndarray:
        counts = np.sum([t.sketches[feature] for t in _telemetry(watcher, device) if feature in t.sketches], axis=0)
        return counts / counts.sum()

    # the accelerometers' mean sits near 0 g on a healthy machine; the injected +2 offset puts it past every
    # reference bin, so the drifting device counts (nearly) all its windows in the last one
    for feature in ("accel_x.mean", "accel_y.mean"):
        assert histogram("emu-002", feature)[-1] > 0.95
        assert histogram("emu-001", feature)[-1] < 0.5


class _PersistentSubscriber:
    """A subscriber with a persistent session, as the server's ingest has: it misses nothing across a restart."""

    def __init__(self, port: int, pattern: str) -> None:
        import threading

        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.payloads: list[bytes] = []
        self._lock = threading.Lock()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-ingest", clean_session=False)
        subscribed = threading.Event()
        self._client.on_message = lambda _c, _u, m: self._keep(bytes(m.payload))
        self._client.on_subscribe = lambda *_args: subscribed.set()
        self._client.reconnect_delay_set(0.2, 1)  # type: ignore[arg-type]
        self._client.connect("127.0.0.1", port)
        self._client.subscribe(pattern, qos=1)
        self._client.loop_start()
        assert subscribed.wait(10)

    def _keep(self, payload: bytes) -> None:
        with self._lock:
            self.payloads.append(bytes(payload))

    def telemetry(self, device: str) -> list[TelemetryV1]:
        with self._lock:
            parsed = [TelemetryV1.model_validate_json(p) for p in self.payloads]
        return [t for t in parsed if t.device_id == device]

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def test_after_a_broker_restart_every_device_delivers_every_interval(tiny_package: TinyPackage, tmp_path: Path) -> None:
    from devices.broker import Mosquitto

    with Mosquitto(tmp_path / "mosquitto") as broker:
        watcher = _PersistentSubscriber(broker.port, "ef/v1/+/telemetry")
        fleet = _fleet(
            tiny_package,
            tmp_path,
            broker.port,
            2,
            injections=("broker-restart",),
            inject_after_s=1.0,
            fault_s=2.0,
            broker=broker,
        )
        fleet.start()
        try:
            wait_until(lambda: broker.restarts == 1, timeout_s=30)
            after = {d: len(watcher.telemetry(d)) for d in ("emu-001", "emu-002")}
            wait_until(lambda: all(len(watcher.telemetry(d)) >= after[d] + 10 for d in after), timeout_s=40)
        finally:
            fleet.stop()
            watcher.close()
    assert broker.last_outage is not None
    down, up = broker.last_outage
    for device in ("emu-001", "emu-002"):
        seqs = sorted({t.seq for t in watcher.telemetry(device)})
        assert seqs == list(range(seqs[0], seqs[-1] + 1)), device
        # the intervals that ended while the broker was down waited in the outbox and arrived after the restart
        assert sum(down < t.ts < up for t in watcher.telemetry(device)) >= 3, device


def test_a_gradual_bearing_fault_grows_in_the_sketches(tiny_package: TinyPackage, tmp_path: Path, broker: int) -> None:
    watcher = Subscriber(broker, "ef/v1/+/telemetry")
    fleet = _fleet(tiny_package, tmp_path, broker, 1, injections=("bearing-gradual",), fault_s=8.0)
    fleet.start()
    try:
        wait_until(lambda: sum(t.inference_count for t in _telemetry(watcher, "emu-001")) >= 500, timeout_s=60)
    finally:
        fleet.stop()
        watcher.close()
    reports = [t for t in _telemetry(watcher, "emu-001") if "accel_y.kurtosis" in t.sketches]
    first = reports[0].ts
    seconds: dict[int, list[int]] = {}
    for report in reports:
        counts = seconds.setdefault(int(report.ts - first), [0] * len(report.sketches["accel_y.kurtosis"]))
        seconds[int(report.ts - first)] = [
            a + b for a, b in zip(counts, report.sketches["accel_y.kurtosis"], strict=True)
        ]
    # the mean reference bin of the windows' kurtosis, second by second
    levels = [float(np.average(np.arange(len(c)), weights=c)) for _, c in sorted(seconds.items()) if sum(c)]
    # the impacts grow over 8 s: the kurtosis climbs through the reference bins, not in one step
    assert levels[-1] - levels[0] > 3, levels
    # seconds strictly on the way (half a bin from either end: a loaded machine serves fewer windows a second, so
    # a second's mean lands nearer the ends)
    between = [level for level in levels if levels[0] + 0.5 < level < levels[-1] - 0.5]
    assert len(between) >= 2, levels


def test_a_full_disk_is_reported_and_the_device_keeps_serving(
    tiny_package: TinyPackage, tmp_path: Path, broker: int
) -> None:
    import os

    if os.geteuid() != 0:
        pytest.skip("the disk-full fault mounts a tmpfs, which needs root (CI runs as root)")
    watcher = Subscriber(broker, "ef/v1/emu-001/#")
    fleet = _fleet(tiny_package, tmp_path, broker, 1, injections=("disk-full",), inject_after_s=1.0)
    fleet.start()
    try:
        disk = fleet.disks["emu-001"]
        wait_until(lambda: disk.is_full, timeout_s=20)
        served = sum(t.inference_count for t in _telemetry(watcher, "emu-001"))
        wait_until(lambda: sum(t.inference_count for t in _telemetry(watcher, "emu-001")) >= served + 50, timeout_s=30)
        details = [EventV1.model_validate_json(p).detail for p, _ in watcher.on("ef/v1/emu-001/events")]
        assert any("full or unwritable" in d for d in details), details
    finally:
        fleet.stop()
        watcher.close()

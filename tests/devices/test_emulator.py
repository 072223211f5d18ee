"""The fleet emulator: N real agents in one process, each online under its own id, offline after stop."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from devices import Fleet
from edgefleet.errors import InputError
from edgefleet.messages import StatusV1, TelemetryV1
from tests.agent.conftest import TinyPackage
from tests.support import wait_until

IDS = ("emu-001", "emu-002", "emu-003")


def _statuses(watcher: Any, device: str) -> list[StatusV1]:
    return [StatusV1.model_validate_json(p) for p, _ in watcher.on(f"ef/v1/{device}/status")]


@pytest.mark.integration
def test_three_emulated_devices_come_online_report_and_go_offline(
    tiny_package: TinyPackage, tmp_path: Path, mqtt_broker: int, subscribe: Any
) -> None:
    watcher = subscribe("ef/v1/+/#")
    fleet = Fleet(
        3,
        tiny_package.path,
        [tiny_package.public_key],
        "127.0.0.1",
        mqtt_broker,
        tmp_path / "fleet",
        telemetry_interval_s=0.1,
        windows_per_s=100,
        profiles=("rpi4b", "rpi5", "x86-gateway"),
        faults=("normal", "imbalance"),
    )
    fleet.start()
    try:
        wait_until(lambda: all(_statuses(watcher, d) for d in IDS))
        online = {d: _statuses(watcher, d)[0] for d in IDS}
        assert {s.state for s in online.values()} == {"online"}
        assert [online[d].profile for d in IDS] == ["rpi4b", "rpi5", "x86-gateway"]
        wait_until(
            lambda: all(
                any(
                    TelemetryV1.model_validate_json(p).inference_count > 0
                    for p, _ in watcher.on(f"ef/v1/{d}/telemetry")
                )
                for d in IDS
            )
        )
    finally:
        fleet.stop()
    wait_until(lambda: all(_statuses(watcher, d)[-1].state == "offline" for d in IDS))
    assert sorted(p.name for p in (tmp_path / "fleet").iterdir()) == list(IDS)


@pytest.mark.unit
def test_an_unknown_profile_or_fault_is_refused_before_anything_starts(tmp_path: Path) -> None:
    args = (2, tmp_path / "p.efpkg", [tmp_path / "k.pub"], "127.0.0.1", 1883, tmp_path)
    with pytest.raises(InputError, match="unknown device profile"):
        Fleet(*args, profiles=("rpi9",))
    with pytest.raises(InputError, match="unknown machine faults"):
        Fleet(*args, faults=("gremlins",))
    assert not any(tmp_path.iterdir())


@pytest.mark.integration
def test_fleet_emulate_runs_for_its_duration(
    tiny_package: TinyPackage, tmp_path: Path, mqtt_broker: int, subscribe: Any
) -> None:
    watcher = subscribe("ef/v1/+/status")
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "edgefleet"),
            *("fleet", "emulate", "--devices", "2", "--duration", "0.5"),
            *("--package", str(tiny_package.path), "--trust", str(tiny_package.public_key)),
            *("--broker-port", str(mqtt_broker), "--data-dir", str(tmp_path / "fleet")),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    wait_until(lambda: all(len(_statuses(watcher, d)) >= 2 for d in IDS[:2]))
    assert [[s.state for s in _statuses(watcher, d)] for d in IDS[:2]] == [["online", "offline"]] * 2


@pytest.mark.unit
def test_a_broker_restart_needs_a_broker_the_fleet_holds_and_unknown_faults_are_named(tmp_path: Path) -> None:
    args = (2, tmp_path / "p.efpkg", [tmp_path / "k.pub"], "127.0.0.1", 1883, tmp_path)
    with pytest.raises(InputError, match="broker-restart") as caught:
        Fleet(*args, injections=("broker-restart",))
    assert "--start-broker" in caught.value.hint
    with pytest.raises(InputError, match="unknown injected faults") as unknown:
        Fleet(*args, injections=("gremlins",))
    assert all(name in unknown.value.hint for name in ("dirty-lens", "cut-download", "crash-mid-update", "disk-full"))


@pytest.mark.unit
def test_a_large_fleet_is_split_into_even_shards_that_number_every_device_once() -> None:
    from devices.shards import shard_sizes

    shards = shard_sizes(1000, 120)
    assert len(shards) == 9
    assert sum(count for _, count in shards) == 1000
    assert max(c for _, c in shards) - min(c for _, c in shards) <= 1
    assert [first for first, _ in shards] == [sum(c for _, c in shards[:i]) for i in range(len(shards))]

"""The three-minute soak: the emulated fleet under a fault every 45 s (broker restart, server SIGKILL, a cohort cut
off in its network namespace, agents killed mid-update), against real Mosquitto in production broker mode (TLS,
per-device logins) and the server in its own process (devices/soak.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from devices.soak import FAULTS, SoakPlan, soak
from tests.agent.tiny import build_tiny_package

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


def test_after_three_minutes_of_faults_nothing_is_lost_no_device_is_bricked_and_every_rollout_ended(
    tmp_path: Path,
) -> None:
    keys = tmp_path / "keys"
    packages = []
    for version in ("1.0.0", "2.0.0", "3.0.0"):
        tiny = build_tiny_package(tmp_path / version, version=version, keys=keys)
        packages.append((version, tiny.path))
    report = soak(tmp_path / "soak", SoakPlan(), "tiny-pump", packages, tiny.public_key)
    print(report)
    assert [name for _, name in report.faults] == list(FAULTS)
    assert report.numbered > report.devices * 60  # about 90 intervals each
    assert report.missing == {}, report.missing
    assert report.stored >= report.numbered
    assert report.bricked == [], report.bricked
    assert report.rollouts
    assert report.unfinished == [], report.rollouts
    assert report.agent_restarts >= 1  # the processes' update was killed at least once
    assert report.cohort == 2
    assert report.cohort_offline_in_cut == report.cohort  # the namespace's cut was a real one: the broker saw it
    # production broker mode: every device had its own login (plus the server's two), and anonymous was refused
    logins = (tmp_path / "soak" / "broker-files" / "passwd").read_text().splitlines()
    assert len(logins) == report.devices + 2
    assert "allow_anonymous false" in (tmp_path / "soak" / "broker-files" / "edgefleet.conf").read_text()

"""The 30-minute soak (devices/soak.py): the emulated fleet under a fault a minute, and what held afterwards.

python -m benchmarks.soak [minutes]
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Final

from devices.soak import FAULTS, SoakPlan, SoakReport, soak

__all__ = ["run"]

PLAN: Final = SoakPlan(duration_s=1800.0, fault_every_s=60.0, devices=24, telemetry_interval_s=5.0)
VERSIONS: Final = tuple(f"{major}.0.0" for major in range(1, 10))


def measure(plan: SoakPlan) -> tuple[SoakReport, float]:
    """The soak's report and its wall time, with tiny signed packages of every version in VERSIONS."""
    from tests.agent.tiny import build_tiny_package

    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        root = Path(tmp)
        packages = []
        for version in VERSIONS:
            tiny = build_tiny_package(root / version, version=version, keys=root / "keys")
            packages.append((version, tiny.path))
        started = time.monotonic()
        report = soak(root / "soak", plan, "tiny-pump", packages, tiny.public_key)
        return report, time.monotonic() - started


def run(plan: SoakPlan = PLAN) -> str:
    """The BENCHMARKS.md section."""
    report, wall_s = measure(plan)
    counts = {name: sum(1 for _, fault in report.faults if fault == name) for name in FAULTS}
    states = {state: sum(1 for s in report.rollouts.values() if s == state) for state in set(report.rollouts.values())}
    lines = [
        "## Soak under faults",
        "",
        f"`python -m benchmarks.soak` (part of `make bench`; devices/soak.py, and a 3-minute version in the suite, "
        f"`tests/soak`): {plan.devices} emulated devices (real agents; one in four as its own process inside a "
        f"network namespace, the cohort) enrolled at the fleet server running as its own process on SQLite, against Mosquitto 2.0.11 "
        f"in production broker mode (TLS, a login per device, ACL) with persistence, telemetry every {plan.telemetry_interval_s:g} s, for {plan.duration_s / 60:g} min with a "
        f"fault every {plan.fault_every_s:g} s in turn: broker restart, server killed with SIGKILL, the cohort's "
        f"link taken down for {plan.cut_s:g} s (MQTT keepalive 5 s), a rollout of the next version with the process "
        f"devices killed with SIGKILL mid-update (broker and server outages {plan.outage_s:g} s). Counted afterwards, "
        f"once every rollout had ended and the fleet had stopped:",
        "",
        "| measure | value |",
        "| --- | ---: |",
        "| faults injected | " + ", ".join(f"{name} {count}" for name, count in counts.items()) + " |",
        f"| telemetry numbered by the devices | {report.numbered:,} |",
        f"| stored by the server (each seq once) | {report.stored:,} |",
        f"| numbered but never stored | {report.missing_count} |",
        f"| devices not online on a rolled-out version afterwards (bricked) | {len(report.bricked)} |",
        "| rollouts | " + ", ".join(f"{count} {state}" for state, count in sorted(states.items())) + " |",
        f"| rollouts neither completed nor aborted | {len(report.unfinished)} |",
        f"| agent processes killed and restarted | {report.agent_restarts} |",
        f"| cohort devices the server saw offline at the end of a cut | {report.cohort_offline_in_cut} of "
        f"{report.cohort} |",
        f"| wall time | {wall_s / 60:.1f} min |",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    minutes = float(sys.argv[1]) if len(sys.argv) > 1 else PLAN.duration_s / 60
    sys.stdout.write(run(replace(PLAN, duration_s=minutes * 60)))

"""Updates under faults: the fault-injection test, many rounds over, counting runs and bricked outcomes.

Each run kills the agent (SIGKILL, or SIGKILL plus files cut back to their last fsync) at one update step,
restarts it, and passes only when the device ends on a verified model with the update committed or rolled
back; a failed run is counted as bricked.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROUNDS = 5
_TEST = "tests/agent/test_update_faults.py"


def run() -> str:
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "faults.xml"
        started = time.monotonic()
        subprocess.run(
            [sys.executable, "-m", "pytest", _TEST, "-q", "-p", "no:cacheprovider", f"--junitxml={report}"],
            cwd=root,
            env=os.environ | {"EDGEFLEET_FAULT_ROUNDS": str(ROUNDS)},
            capture_output=True,
            check=False,
        )
        elapsed_s = time.monotonic() - started
        # the file pytest just wrote in our own temp folder, not untrusted input
        suite = ET.parse(report).getroot().find("testsuite")  # noqa: S314
        assert suite is not None, "pytest wrote no test suite"
        runs = int(suite.get("tests", "0"))
        bricked = int(suite.get("failures", "0")) + int(suite.get("errors", "0"))
    return (
        "## Updates under faults (SIGKILL and power cuts at every step)\n\n"
        f"`EDGEFLEET_FAULT_ROUNDS={ROUNDS} pytest {_TEST}`: 11 failpoints (every step boundary, two points in "
        "the download, the health window) × SIGKILL or power cut (files cut back to their last fsync) × "
        f"{ROUNDS} rounds.\n\n"
        "| runs | ended committed or rolled back on a verified model | bricked or unresolved | time |\n"
        "| ---: | ---: | ---: | ---: |\n"
        f"| {runs} | {runs - bricked} | **{bricked}** (goal 0) | {elapsed_s:.0f} s |\n"
    )

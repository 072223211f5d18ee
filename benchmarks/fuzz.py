"""Fuzzing figures: every payload parser fed many more inputs than the suite gives it, with the failures found.

The MQTT targets (tests/security/fuzzing.py) run here in-process under Hypothesis with a large budget; the package
reader and the whole OpenAPI (schemathesis) run their own suite tests under pytest, several seeds each, and the
inputs are counted from Hypothesis's statistics. Every failure count must be 0.
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from hypothesis import HealthCheck, given, settings

from tests.security.fuzzing import CommandTarget, IngestTarget, ingest_topics, mqtt_inputs, parse_target

__all__ = ["run"]

_ROOT: Final = Path(__file__).resolve().parents[1]
_MQTT_EXAMPLES: Final = 20_000
_PACKAGE_SEEDS: Final = (1, 2, 3, 4)
_KEY_LIST_ARGS: Final = ["tests/package/test_key_list.py", "-k", "arbitrary or mutated", "--hypothesis-seed=1"]
_COUNTS: Final = re.compile(r"(\d+) passing, (\d+) failing, and (\d+) invalid test cases")


@dataclass(frozen=True, slots=True)
class _Figure:
    target: str
    inputs: int
    failures: int
    seconds: float
    note: str = ""


def _hypothesis(name: str, body: Callable[[], None]) -> _Figure:
    start = time.perf_counter()
    try:
        body()
        failures, note = 0, ""
    except Exception as err:  # any failure of any target is a finding to report, not to stop at
        failures, note = 1, f"{type(err).__name__}: {str(err).splitlines()[0][:120]}"
    return _Figure(name, _CALLS.pop(name, 0), failures, time.perf_counter() - start, note)


_CALLS: dict[str, int] = {}


def _counted(name: str) -> Callable[[], None]:
    _CALLS[name] = 0
    return lambda: _CALLS.__setitem__(name, _CALLS[name] + 1)


def _mqtt_figures() -> list[_Figure]:
    # each refused input logs a warning by design; thousands of them would only bury the figures
    for noisy in ("edge_agent", "fleet_server"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    budget = settings(
        max_examples=_MQTT_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    command, ingest = CommandTarget(), IngestTarget()
    bump_parse, bump_command, bump_ingest = (_counted(n) for n in ("parse", "command", "ingest"))

    @budget
    @given(payload=mqtt_inputs())
    def parse(payload: bytes) -> None:
        bump_parse()
        parse_target(payload)

    @budget
    @given(payload=mqtt_inputs())
    def agent_command(payload: bytes) -> None:
        bump_command()
        command(payload)

    @budget
    @given(topic=ingest_topics(), payload=mqtt_inputs())
    def ingest_refusal(topic: str, payload: bytes) -> None:
        bump_ingest()
        ingest(topic, payload)

    try:
        return [
            _hypothesis("parse", parse),
            _hypothesis("command", agent_command),
            _hypothesis("ingest", ingest_refusal),
        ]
    finally:
        command.close()


def _pytest_figure(name: str, args: list[str]) -> _Figure:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--hypothesis-show-statistics", *args],
        cwd=_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    counts = [tuple(map(int, m.groups())) for m in _COUNTS.finditer(done.stdout)]
    inputs = sum(passing + failing + invalid for passing, failing, invalid in counts)
    failing = sum(f for _, f, _ in counts)
    failed_tests = re.search(r"(\d+) failed", done.stdout)
    failures = max(failing, int(failed_tests.group(1)) if failed_tests else 0, 0 if done.returncode == 0 else 1)
    return _Figure(name, inputs, failures, time.perf_counter() - start)


def run() -> str:
    """Fuzz every parser, and return the Markdown section for BENCHMARKS.md."""
    figures = _mqtt_figures()
    package_runs = [
        _pytest_figure("package", ["tests/package/test_fuzz.py", f"--hypothesis-seed={s}"]) for s in _PACKAGE_SEEDS
    ]
    figures.append(
        _Figure(
            "package",
            sum(f.inputs for f in package_runs),
            sum(f.failures for f in package_runs),
            sum(f.seconds for f in package_runs),
        )
    )
    figures.append(_pytest_figure("keylist", _KEY_LIST_ARGS))
    figures.append(_pytest_figure("openapi", ["tests/server/test_openapi_fuzz.py", "-k", "sqlite"]))
    labels = {
        "parse": "`parse_message`: arbitrary bytes and mutated status, telemetry, event and command messages",
        "command": "the agent's command callback (`Link._on_message`, then `commands()`)",
        "ingest": "ingest's refusal path (`Ingest._refusal`) over random and device topics",
        "package": f"package reader (`open_package`) on mutated archives, seeds {', '.join(map(str, _PACKAGE_SEEDS))}",
        "keylist": "signing-key list (`parse_key_list`, `open_key_list`): arbitrary and mutated `keys.json`",
        "openapi": "schemathesis over every operation of the OpenAPI (SQLite), admin token",
    }
    rows = [
        f"| {labels[f.target]} | {f.inputs:,} | {f.failures} | {f.seconds:.0f} s |" + (f" {f.note}" if f.note else "")
        for f in figures
    ]
    return "\n".join(
        [
            "## Fuzzing",
            "",
            "`python -m benchmarks` (benchmarks/fuzz.py): the suite's fuzz targets with a larger budget. A failure is "
            "any exception other than the parser's own refusal (pydantic's ValidationError, PackageError) or, for "
            "the OpenAPI, any 5xx answer. Inputs count every example Hypothesis ran, invalid ones included.",
            "",
            "| target | inputs tried | failures | time |",
            "| --- | ---: | ---: | ---: |",
            *rows,
            "",
        ]
    )


if __name__ == "__main__":
    sys.stdout.write(run())

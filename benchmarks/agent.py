"""The agent's own costs, each against a baseline measured in the same run.

- inference: ``Agent.infer`` (preprocessing, the backend, probabilities) against bare onnxruntime running the
  same artifact with the same thread count on the same inputs, already preprocessed, and preprocessing the raw
  window itself with the agent's code (an ``InputPreparer`` built once, as any serving loop would);
- memory: the resident set of an agent process that has loaded the package and served inferences, with
  onnxruntime and with LiteRT, against a bare Python process that imported numpy;
- cold start: a new process from exec to its first answer.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

import numpy as np

from edge_agent import Agent, AgentSettings
from edgefleet.manifest import ArtifactFormat, Precision
from edgefleet.preprocess import InputPreparer
from edgefleet.signing import generate_keys
from export import ExportOptions, export_run
from export.packaging import package_export
from train import PdmConfig, load_run, train_pdm

__all__ = ["run"]

_REPEATS: Final = 5
_CALLS: Final = 2000

# run in a fresh process: load the package as the agent does, serve 200 windows, print RSS and time to first answer
_CHILD: Final = """
import sys, time
started = float(sys.argv[2])
import numpy as np
from edge_agent import Agent, AgentSettings
settings = AgentSettings.model_validate_json(sys.argv[1])
agent = Agent(settings)
agent.load()
window = np.random.default_rng(0).normal(size=(5, 512)).astype(np.float32)
agent.infer(window)
first = time.time() - started
for _ in range(200):
    agent.infer(window)
rss_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS:"))
print(first, rss_kb / 1024)
"""
# ru_maxrss survives exec on Linux (a child would report its parent's peak): read the current RSS instead
_BARE: Final = (
    "import numpy; print(next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmRSS:')) / 1024)"
)


def _settings(package: Path, key: Path, data_dir: Path) -> AgentSettings:
    return AgentSettings.model_validate(
        {"device_id": "bench-1", "data_dir": data_dir, "package": package, "trusted_keys": [key]}
    )


def _package(tmp: Path, fmt: ArtifactFormat, key: Path) -> Path:
    options = ExportOptions(formats=(fmt,), precisions=(Precision.INT8,), latency_runs=5)
    export_run(tmp / "run", tmp / f"export-{fmt}", options)
    return package_export(tmp / f"export-{fmt}", key=key, version="1.0.0", out=tmp / f"model-{fmt}.efpkg")


def _overhead(settings: AgentSettings, window: np.ndarray) -> tuple[float, float, float]:
    import onnxruntime as ort

    agent = Agent(settings)
    model = agent.load()
    path = settings.data_dir / "slots" / "a" / model.artifact.path
    options = ort.SessionOptions()
    options.intra_op_num_threads = settings.threads
    options.inter_op_num_threads = 1
    options.enable_cpu_mem_arena = False
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    prepare = InputPreparer(model.manifest.preprocessing)
    prepared = prepare(window[None])

    def per_call_us(call: Callable[[], object]) -> float:
        for _ in range(100):
            call()
        start = time.perf_counter()
        for _ in range(_CALLS):
            call()
        return (time.perf_counter() - start) / _CALLS * 1e6

    agent_us, bare_us, scaled_us = [], [], []
    for _ in range(_REPEATS):
        agent_us.append(per_call_us(lambda: agent.infer(window)))
        bare_us.append(per_call_us(lambda: session.run(None, {"x": prepared})))
        scaled_us.append(per_call_us(lambda: session.run(None, {"x": prepare(window[None])})))
    return statistics.median(agent_us), statistics.median(bare_us), statistics.median(scaled_us)


def _child(settings: AgentSettings) -> tuple[float, float]:
    firsts, rss = [], []
    for _ in range(3):
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, settings.model_dump_json(), str(time.time())],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        first, memory = (float(v) for v in out.stdout.split())
        firsts.append(first)
        rss.append(memory)
    return statistics.median(firsts), statistics.median(rss)


def run() -> str:
    """Measure, and return the Markdown section for BENCHMARKS.md."""
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        train_pdm(PdmConfig(), tmp / "run")
        private_key, public_key = generate_keys(tmp / "keys")
        packages = {fmt: _package(tmp, fmt, private_key) for fmt in (ArtifactFormat.ONNX, ArtifactFormat.TFLITE)}
        run_info = load_run(tmp / "run")
        with np.load(tmp / "run" / run_info.calibration) as data:
            window = data["held_out_inputs"][0]
        onnx_settings = _settings(packages[ArtifactFormat.ONNX], public_key, tmp / "agent-onnx")
        agent_us, bare_us, scaled_us = _overhead(onnx_settings, window)
        start = {fmt: _child(_settings(p, public_key, tmp / f"agent-{fmt}")) for fmt, p in packages.items()}
        bare_rss = statistics.median(
            float(subprocess.run([sys.executable, "-c", _BARE], capture_output=True, text=True).stdout)
            for _ in range(3)
        )
    rows = [
        "| measure | agent | baseline | ratio or difference |",
        "| --- | ---: | ---: | ---: |",
        f"| one inference, int8 ONNX, 1 thread (median of {_REPEATS}×{_CALLS}) | {agent_us:.1f} µs | "
        f"{bare_us:.1f} µs bare onnxruntime | {agent_us / bare_us:.2f} (+{agent_us - bare_us:.1f} µs; goal ≤ 1.05) |",
        f"| the same, against onnxruntime plus the same preprocessing | {agent_us:.1f} µs | {scaled_us:.1f} µs | "
        f"{agent_us / scaled_us:.2f} (+{agent_us - scaled_us:.1f} µs) |",
    ]
    for fmt, (first_s, rss_mb) in start.items():
        runtime = "onnxruntime" if fmt is ArtifactFormat.ONNX else "LiteRT"
        rows.append(
            f"| resident memory after 200 inferences, {runtime} | {rss_mb:.0f} MB | {bare_rss:.0f} MB python+numpy "
            f"| +{rss_mb - bare_rss:.0f} MB (goal ≤ 80 MB in all) |"
        )
        rows.append(f"| cold start to first answer, {runtime} (median of 3) | {first_s:.2f} s | – | – |")
    return "## Agent: overhead, memory, cold start (sensor CNN, int8)\n\n" + "\n".join(rows) + "\n"

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
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np

from edge_agent import Agent, AgentSettings
from edgefleet.manifest import ArtifactFormat, Precision
from edgefleet.preprocess import InputPreparer
from edgefleet.signing import generate_keys
from export import ExportOptions, export_run
from export.packaging import package_export
from train import PdmConfig, VisionConfig, load_run, train_pdm, train_vision

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
_RSS_MB: Final = "next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmRSS:')) / 1024"
_BARE: Final = f"import numpy; print({_RSS_MB})"
# what the runtime alone costs: the same artifact in a bare session, same threads, 200 runs
_BARE_ONNX: Final = f"""
import sys, numpy as np, onnxruntime as ort
options = ort.SessionOptions()
options.intra_op_num_threads = options.inter_op_num_threads = 1
options.enable_cpu_mem_arena = False
session = ort.InferenceSession(sys.argv[1], options, providers=["CPUExecutionProvider"])
x = np.random.default_rng(0).normal(size=(1, 5, 512)).astype(np.float32)
for _ in range(200):
    session.run(None, {{session.get_inputs()[0].name: x}})
print({_RSS_MB})
"""


def _settings(package: Path, key: Path, data_dir: Path) -> AgentSettings:
    return AgentSettings.model_validate(
        {"device_id": "bench-1", "data_dir": data_dir, "package": package, "trusted_keys": [key]}
    )


def _package(tmp: Path, run_dir: Path, fmt: ArtifactFormat, key: Path) -> Path:
    options = ExportOptions(formats=(fmt,), precisions=(Precision.INT8,), latency_runs=5)
    export = tmp / f"export-{run_dir.name}-{fmt}"
    export_run(run_dir, export, options)
    return package_export(export, key=key, version="1.0.0", out=tmp / f"{run_dir.name}-{fmt}.efpkg")


@dataclass(frozen=True, slots=True)
class _Overhead:
    """Microseconds per call for one model and batch: the agent, bare onnxruntime on inputs already prepared, and
    onnxruntime with the same preprocessing done per call."""

    label: str
    agent_us: float
    bare_us: float
    prepared_us: float


def _per_call_us(call: Callable[[], object]) -> float:
    """Median-ready time per call: enough calls for about 0.3 s, after a warm-up."""
    for _ in range(20):
        call()
    start = time.perf_counter()
    call()
    calls = max(50, min(_CALLS, int(0.3 / max(time.perf_counter() - start, 1e-6))))
    start = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - start) / calls * 1e6


def _overhead(settings: AgentSettings, inputs: list[np.ndarray], label: str) -> _Overhead:
    import onnxruntime as ort

    agent = Agent(settings)
    model = agent.load()
    path = settings.data_dir / "slots" / "a" / model.artifact.path
    options = ort.SessionOptions()
    options.intra_op_num_threads = settings.threads
    options.inter_op_num_threads = 1
    options.enable_cpu_mem_arena = False
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = model.manifest.inputs[0].name
    prepare = InputPreparer(model.manifest.preprocessing)
    prepared = prepare(np.stack(inputs))

    agent_us, bare_us, prepared_us = [], [], []
    for _ in range(_REPEATS):
        agent_us.append(_per_call_us(lambda: agent.infer_batch(inputs)))
        bare_us.append(_per_call_us(lambda: session.run(None, {feed: prepared})))
        prepared_us.append(_per_call_us(lambda: session.run(None, {feed: prepare(np.stack(inputs))})))
    agent.close()
    return _Overhead(label, statistics.median(agent_us), statistics.median(bare_us), statistics.median(prepared_us))


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


def _median_rss(script: str, *args: str) -> float:
    """Median resident MB of three fresh processes running ``script``."""
    return statistics.median(
        float(subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, check=True).stdout)
        for _ in range(3)
    )


def _held_out(run_dir: Path, count: int) -> list[np.ndarray]:
    """The first ``count`` raw held-out inputs of a run (sensor windows or images), as a device would see them."""
    with np.load(run_dir / load_run(run_dir).calibration) as data:
        return list(data["held_out_inputs"][:count])


def _overhead_row(o: _Overhead) -> str:
    return (
        f"| {o.label} | {o.agent_us:,.1f} µs | {o.bare_us:,.1f} µs | {o.agent_us / o.bare_us:.3f} "
        f"(+{o.agent_us - o.bare_us:,.1f} µs) | {o.prepared_us:,.1f} µs | {o.agent_us / o.prepared_us:.3f} |"
    )


def run() -> str:
    """Measure, and return the Markdown section for BENCHMARKS.md."""
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        private_key, public_key = generate_keys(tmp / "keys")
        train_pdm(PdmConfig(), tmp / "pdm")
        # latency does not depend on how well it learned: a short run gives the real architecture
        train_vision(VisionConfig(per_class=40, epochs=2), tmp / "vision")
        formats = (ArtifactFormat.ONNX, ArtifactFormat.TFLITE)
        packages = {fmt: _package(tmp, tmp / "pdm", fmt, private_key) for fmt in formats}
        vision = _package(tmp, tmp / "vision", ArtifactFormat.ONNX, private_key)
        windows, images = _held_out(tmp / "pdm", 8), _held_out(tmp / "vision", 1)
        sensor = packages[ArtifactFormat.ONNX]
        overheads = [
            _overhead(_settings(sensor, public_key, tmp / "o1"), windows[:1], "sensor CNN, 1 window"),
            _overhead(_settings(sensor, public_key, tmp / "o8"), windows, "sensor CNN, 8 windows (the agent's batch)"),
            _overhead(_settings(vision, public_key, tmp / "ov"), images, "image CNN 64×64, 1 image"),
        ]
        start = {fmt: _child(_settings(p, public_key, tmp / f"agent-{fmt}")) for fmt, p in packages.items()}
        bare_rss = _median_rss(_BARE)
        onnx_rss = _median_rss(_BARE_ONNX, str(next((tmp / f"agent-{ArtifactFormat.ONNX}" / "slots").rglob("*.onnx"))))
    rows = [
        "| int8 ONNX, 1 thread, per call | agent | bare onnxruntime | ratio (goal ≤ 1.05) "
        "| onnxruntime + the same preprocessing | ratio |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        *(_overhead_row(o) for o in overheads),
        "",
        "| measure | agent | baseline | difference |",
        "| --- | ---: | ---: | ---: |",
    ]
    for fmt, (first_s, rss_mb) in start.items():
        runtime = "onnxruntime" if fmt is ArtifactFormat.ONNX else "LiteRT"
        rows.append(
            f"| resident memory after 200 inferences, {runtime} | {rss_mb:.0f} MB | {bare_rss:.0f} MB python+numpy "
            f"| +{rss_mb - bare_rss:.0f} MB (goal ≤ 80 MB in all) |"
        )
        if fmt is ArtifactFormat.ONNX:
            rows.append(
                f"| the same, against the runtime alone | {rss_mb:.0f} MB | {onnx_rss:.0f} MB python+numpy+a bare "
                f"onnxruntime session on the same artifact | +{rss_mb - onnx_rss:.0f} MB |"
            )
        rows.append(f"| cold start to first answer, {runtime} (median of 3) | {first_s:.2f} s | – | – |")
    return (
        "## Agent: overhead, memory, cold start (int8)\n\n"
        f'`python -c "from benchmarks import agent; print(agent.run())"`; medians of {_REPEATS}. Overhead: '
        "`Agent.infer_batch` on raw inputs against a bare onnxruntime session (same artifact, thread count and "
        "inputs, already preprocessed), and against that session with the agent's own preprocessing per call.\n\n"
        + "\n".join(rows)
        + "\n"
    )

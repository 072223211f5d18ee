"""Run the real agent's model path on a package and print its answers as JSON, to compare CPUs (x86-64 and arm64).

It installs the package as a device does at its first start (verify the signature and hashes, unpack into a
slot, load the artifact this agent picks, pass the package's smoke test), then answers a fixed set of
simulated sensor windows. Run it on two machines, or on this one and under ``qemu-aarch64-static`` with the
root ``scripts/arm64-root.sh`` prepares, and compare the two outputs:

    python -m devices.arm64_probe PACKAGE --trust KEY --data-dir DIR [--windows N]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edge_agent import Agent, AgentSettings
from edgefleet.errors import EdgefleetError
from edgefleet.sensor_sim import FAULTS, Recording

__all__ = ["main", "probe"]


def probe(package: Path, trusted_keys: list[Path], data_dir: Path, windows: int = 14) -> dict[str, Any]:
    """Install ``package`` for a fresh device in ``data_dir`` and answer ``windows`` windows (two per fault).

    Returns the machine, runtime versions, the artifact chosen, and every answer (label, confidence, raw
    output row); raises EdgefleetError as the agent would when the package cannot run here.
    """
    import onnxruntime

    settings = AgentSettings(device_id="arm64-probe", data_dir=data_dir, package=package, trusted_keys=trusted_keys)
    agent = Agent(settings)
    try:
        model = agent.load()
        rng = np.random.default_rng(7)
        inputs: list[npt.NDArray[np.generic]] = [
            Recording.random(i % len(FAULTS), rng).window(0, rng) for i in range(windows)
        ]
        predictions = agent.infer_batch(inputs)
        output = model.manifest.outputs[0].name
        rows = [
            model.backend.run({model.manifest.inputs[0].name: agent_prepared})[output].reshape(-1).tolist()
            for agent_prepared in _prepared(agent, inputs)
        ]
    finally:
        agent.close()
    return {
        "machine": platform.machine(),
        "onnxruntime": onnxruntime.__version__,
        "numpy": np.__version__,
        "artifact": model.artifact.path,
        "labels": [p.label for p in predictions],
        "confidences": [p.confidence for p in predictions],
        "outputs": rows,
    }


def _prepared(agent: Agent, inputs: list[npt.NDArray[np.generic]]) -> list[npt.NDArray[np.float32]]:
    from edgefleet.preprocess import InputPreparer

    prepare = InputPreparer(agent.model.manifest.preprocessing)
    return [prepare(window[None]) for window in inputs]


def main(argv: list[str] | None = None) -> int:
    """The command line: prints the probe's JSON on stdout; exit 1 when the package cannot run here."""
    parser = argparse.ArgumentParser(prog="python -m devices.arm64_probe", description=__doc__.splitlines()[0])
    parser.add_argument("package", type=Path)
    parser.add_argument("--trust", type=Path, action="append", required=True, help="a trusted public key")
    parser.add_argument("--data-dir", type=Path, required=True, help="an empty folder for the device's slots")
    parser.add_argument("--windows", type=int, default=14)
    args = parser.parse_args(argv)
    try:
        result = probe(args.package, args.trust, args.data_dir, args.windows)
    except EdgefleetError as err:
        sys.stderr.write(f"{err.message}\n  hint: {err.hint}\n")
        return 1
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The agent installs and runs with only its own extra: no torch, tensorflow, fastapi or sqlalchemy."""

from __future__ import annotations

import subprocess
import venv
from pathlib import Path

import pytest

from edgefleet.sensor_sim import FAULTS
from tests.agent.conftest import TinyPackage

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import importlib.util, sys
from pathlib import Path
import numpy as np
from edge_agent import Agent, AgentSettings
from edgefleet.sensor_sim import FAULTS, Recording

package, key, data = map(Path, sys.argv[1:4])
agent = Agent(AgentSettings(device_id="fresh-1", data_dir=data, package=package, trusted_keys=[key]))
agent.load()
rng = np.random.default_rng(0)
prediction = agent.infer(Recording.random(FAULTS.index("imbalance"), rng).window(0, rng))
print("predicted", FAULTS[prediction.label])
print("artifact", agent.model.artifact.path)
forbidden = ["torch", "tensorflow", "fastapi", "sqlalchemy", "train", "export", "fleet_server", "devices"]
print("installed", [m for m in forbidden[:4] if importlib.util.find_spec(m) is not None])
print("imported", [m for m in forbidden if m in sys.modules])
"""


def test_agent_extra_alone_runs_a_package(tiny_package: TinyPackage, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", f"{REPO}[agent]"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    run = subprocess.run(
        [python, "-c", SCRIPT, str(tiny_package.path), str(tiny_package.public_key), str(tmp_path / "device")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,  # not the repo, so nothing is imported from the source tree by accident
    )
    assert run.returncode == 0, run.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in run.stdout.strip().splitlines())
    assert lines["predicted"] in FAULTS
    assert lines["artifact"] == "model-int8.onnx"
    assert lines["installed"] == "[]"
    assert lines["imported"] == "[]"
    agent_script = env_dir / "bin" / "edgefleet-agent"
    assert subprocess.run([agent_script, "--help"], capture_output=True, timeout=60).returncode == 0

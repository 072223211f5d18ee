"""The agent installs and runs with only its own extra: no torch, tensorflow, fastapi or sqlalchemy."""

from __future__ import annotations

import subprocess
import venv
from pathlib import Path

import pytest

from tests.conftest import Pipeline

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import importlib.util, sys
from pathlib import Path
import numpy as np
from edge_agent.model import install_package, load_model
from edgefleet.sensor_sim import FAULTS, Recording
from edgefleet.preprocess import prepare_sensor_windows
from edgefleet.signing import load_public_keys

package, key, slot = map(Path, sys.argv[1:4])
loaded = load_model(install_package(package, slot, load_public_keys([key])), threads=1)
rng = np.random.default_rng(0)
window = Recording.random(FAULTS.index("imbalance"), rng).window(0, rng)
batch = prepare_sensor_windows(window, loaded.manifest.preprocessing)
probs = loaded.backend.run({loaded.backend.input_names[0]: batch})[0][0]
print("predicted", FAULTS[int(probs.argmax())])
forbidden = ["torch", "tensorflow", "fastapi", "sqlalchemy", "train", "export", "fleet_server", "devices"]
print("installed", [m for m in forbidden[:4] if importlib.util.find_spec(m) is not None])
print("imported", [m for m in forbidden if m in sys.modules])
"""


def test_agent_extra_alone_runs_a_package(pipeline: Pipeline, tmp_path: Path) -> None:
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
        [python, "-c", SCRIPT, str(pipeline.package), str(pipeline.public_key), str(tmp_path / "slot")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,  # not the repo, so nothing is imported from the source tree by accident
    )
    assert run.returncode == 0, run.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in run.stdout.strip().splitlines())
    assert lines["predicted"] == "imbalance"
    assert lines["installed"] == "[]"
    assert lines["imported"] == "[]"

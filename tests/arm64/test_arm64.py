"""The agent and a signed package under qemu-aarch64 user emulation give the answers they give on x86-64.

The arm64 root (Debian's arm64 Python 3.11 unpacked into a folder, the agent's arm64 wheels beside it) is
prepared once by scripts/arm64-root.sh into ~/.cache/edgefleet/arm64 (or $EDGEFLEET_ARM64_ROOT) and reused.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.agent.conftest import TinyPackage

REPO = Path(__file__).resolve().parents[2]
QEMU = "qemu-aarch64-static"

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def arm64_root() -> Path:
    """The prepared arm64 root; built on first use (about 20 s with a warm apt cache, under a minute cold)."""
    if shutil.which(QEMU) is None:
        pytest.fail(f"{QEMU} is missing: run `make debs` (Debian's qemu-user-static)")
    root = Path(os.environ.get("EDGEFLEET_ARM64_ROOT", Path.home() / ".cache/edgefleet/arm64"))
    done = subprocess.run(
        ["bash", str(REPO / "scripts/arm64-root.sh"), str(root)],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return root


def _probe(command: list[str], package: TinyPackage, data_dir: Path, env: dict[str, str]) -> dict[str, Any]:
    arguments = [str(package.path), "--trust", str(package.public_key), "--data-dir", str(data_dir)]
    done = subprocess.run(
        [*command, "-m", "devices.arm64_probe", *arguments],
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_the_agent_answers_on_arm64_as_on_x86(arm64_root: Path, tiny_package: TinyPackage, tmp_path: Path) -> None:
    sysroot = arm64_root / "sysroot"
    emulated = _probe(
        [QEMU, "-L", str(sysroot), str(sysroot / "usr/bin/python3.11")],
        tiny_package,
        tmp_path / "arm64",
        {"PYTHONPATH": f"{arm64_root / 'site'}:{REPO}"},
    )
    native = _probe([sys.executable], tiny_package, tmp_path / "x86", {})
    assert (emulated["machine"], native["machine"]) == ("aarch64", "x86_64")
    # the combination DESIGN.md names: onnxruntime 1.32 crashes under qemu-user 7.2, 1.19.2 runs
    assert emulated["onnxruntime"] == "1.19.2"
    assert emulated["artifact"] == native["artifact"]
    assert emulated["labels"] == native["labels"]
    np.testing.assert_allclose(emulated["outputs"], native["outputs"], atol=1e-4)
    np.testing.assert_allclose(emulated["confidences"], native["confidences"], atol=1e-4)

"""The command line: exit 0 on success, 1 for a failed check, 2 for bad input, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Pipeline
from tests.package.tarcraft import Member, read_members, write_members

pytestmark = pytest.mark.integration


def edgefleet(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "edgefleet", *map(str, args)], capture_output=True, text=True, env=env, timeout=120
    )


def test_keys_generate_writes_a_private_key_only_its_owner_can_read(tmp_path: Path) -> None:
    result = edgefleet("keys", "generate", "--out", tmp_path / "k")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "k" / "signing.key").stat().st_mode & 0o777 == 0o600
    again = edgefleet("keys", "generate", "--out", tmp_path / "k")
    assert again.returncode == 2
    assert "already exists" in again.stderr


def test_keys_certify_a_rotated_key_that_a_package_brings_and_a_verifier_trusting_only_the_root_accepts(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    for name in ("root", "a", "b"):
        assert edgefleet("keys", "generate", "--out", tmp_path / name).returncode == 0
    keys = tmp_path / "keys.json"
    root_key = tmp_path / "root" / "signing.key"
    first = edgefleet("keys", "certify", "--root", root_key, "--key", tmp_path / "a" / "signing.pub", "--out", keys)
    assert first.returncode == 0, first.stderr
    assert "key list version 1" in first.stdout
    # the next list takes the next version by itself: B replaces A
    second = edgefleet("keys", "certify", "--root", root_key, "--key", tmp_path / "b" / "signing.pub", "--out", keys)
    assert "key list version 2" in second.stdout, second.stderr
    shown = edgefleet("keys", "show", keys, "--root", tmp_path / "root" / "signing.pub")
    assert shown.returncode == 0, shown.stderr
    wrong_root = edgefleet("keys", "show", keys, "--root", tmp_path / "a" / "signing.pub")
    assert wrong_root.returncode == 1
    assert "not signed by a trusted root key" in wrong_root.stderr
    assert "Traceback" not in wrong_root.stderr

    package = tmp_path / "rotated.efpkg"
    built = edgefleet(
        "package", "build", pipeline.export, "--key", tmp_path / "b" / "signing.key", "--version", "2.0.0",
        "--out", package, "--key-list", keys,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    verified = edgefleet("package", "verify", package, "--root", tmp_path / "root" / "signing.pub")
    assert verified.returncode == 0, verified.stderr
    assert "OK pump-vibration 2.0.0" in verified.stdout
    # the package signed with A, the revoked key, is not vouched for by the root's list
    refused = edgefleet("package", "verify", pipeline.package, "--root", tmp_path / "root" / "signing.pub")
    assert refused.returncode == 1
    assert "not among the trusted keys" in refused.stderr
    assert edgefleet("package", "verify", package).returncode == 2


def test_verify_accepts_the_package_and_names_its_key(pipeline: Pipeline) -> None:
    result = edgefleet("package", "verify", pipeline.package, "--trust", pipeline.public_key)
    assert result.returncode == 0, result.stderr
    assert "OK pump-vibration 1.0.0" in result.stdout


def test_verify_refuses_a_tampered_package_in_one_line(pipeline: Pipeline, tmp_path: Path) -> None:
    members = [
        Member(m.name, m.data[:-4] + b"evil") if m.name.endswith(".onnx") else m for m in read_members(pipeline.package)
    ]
    bad = write_members(tmp_path / "bad.efpkg", members)
    result = edgefleet("package", "verify", bad, "--trust", pipeline.public_key)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert "does not match the sha256" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("package", "verify", "/no/such.efpkg", "--trust", "/no/such.pub"),
        ("package", "inspect", "/no/such.efpkg"),
        ("export", "/no/run", "--out", "/tmp/never", "--precisions", "fp8"),
        ("package", "build", "/no/export", "--key", "/no/key", "--version", "1.0.0", "--out", "/tmp/x.efpkg"),
    ],
)
def test_bad_input_exits_2_with_a_hint_and_no_traceback(args: tuple[str, ...]) -> None:
    result = edgefleet(*args)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "hint:" in result.stderr


def test_inspect_shows_the_artifacts(pipeline: Pipeline) -> None:
    result = edgefleet("package", "inspect", pipeline.package)
    assert result.returncode == 0
    assert "pump-vibration-int8.onnx" in result.stdout


def test_the_command_line_loads_no_ml_framework_or_server_until_a_command_needs_it() -> None:
    script = (
        "import sys, edgefleet.cli\n"
        "heavy = {'torch', 'onnx', 'onnxruntime', 'fastapi', 'sqlalchemy', 'train', 'export', 'fleet_server'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


def test_package_build_signs_an_export_that_verify_then_accepts(pipeline: Pipeline, tmp_path: Path) -> None:
    out = tmp_path / "cli.efpkg"
    built = edgefleet(
        "package", "build", pipeline.export, "--key", pipeline.private_key, "--version", "2.0.0", "--out", out
    )
    assert built.returncode == 0, built.stderr
    verified = edgefleet("package", "verify", out, "--trust", pipeline.public_key, "--installed-version", "1.0.0")
    assert verified.returncode == 0, verified.stderr
    assert "2.0.0" in verified.stdout
    older = edgefleet("package", "verify", out, "--trust", pipeline.public_key, "--installed-version", "3.0.0")
    assert older.returncode == 1
    assert "older than the installed 3.0.0" in older.stderr

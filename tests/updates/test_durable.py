"""Crash-safe writes: a replaced file holds the old bytes or all the new ones, and no temp file stays."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent import durable

pytestmark = pytest.mark.unit


def test_write_atomic_replaces_the_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "journal.json"
    durable.write_atomic(target, b"old")
    durable.write_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["journal.json"]


def test_write_atomic_that_fails_keeps_the_old_bytes_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "journal.json"
    durable.write_atomic(target, b"old")

    def no_space(fh: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(durable, "fsync_file", no_space)
    with pytest.raises(OSError, match="No space"):
        durable.write_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["journal.json"]

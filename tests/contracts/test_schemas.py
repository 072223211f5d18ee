"""The JSON Schemas in docs/schemas/ are the ones the contracts generate today."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgefleet.schemas import render_schemas

pytestmark = pytest.mark.unit

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "docs" / "schemas"


def test_checked_in_schemas_are_current() -> None:
    stale = [
        name
        for name, text in render_schemas().items()
        if not (SCHEMA_DIR / name).exists() or (SCHEMA_DIR / name).read_text() != text
    ]
    extra = sorted({p.name for p in SCHEMA_DIR.glob("*.schema.json")} - set(render_schemas()))
    assert not stale, f"stale schemas {stale}: run `edgefleet schemas` and commit docs/schemas/"
    assert not extra, f"schemas of contracts that no longer exist: {extra}"

"""The layering of DESIGN.md holds: each folder imports only what it may, even inside function bodies."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
_FRAMEWORKS = {"torch", "tensorflow", "litert_torch"}
FORBIDDEN = {
    "edgefleet": _FRAMEWORKS
    | {"onnxruntime", "fastapi", "sqlalchemy", "paho", "typer", "rich", "train", "export"}
    | {"edge_agent", "fleet_server", "devices"},
    "edge_agent": _FRAMEWORKS
    | {"fastapi", "sqlalchemy", "starlette", "uvicorn", "alembic", "amqtt"}
    | {"train", "export", "fleet_server", "devices"},
    "fleet_server": _FRAMEWORKS | {"train", "export", "edge_agent", "devices"},
    "devices": _FRAMEWORKS | {"fastapi", "sqlalchemy", "train", "export", "fleet_server"},
    "train": {"tensorflow", "fastapi", "sqlalchemy", "export", "edge_agent", "fleet_server", "devices"},
    # export runs its gates on the agent's own backends and estimates latency from the device profiles
    "export": {"fastapi", "sqlalchemy", "fleet_server"},
}
# the command line imports the other folders inside each command's body, by design
EXEMPT = {ROOT / "edgefleet" / "cli"}


def _imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_folder_imports_only_what_the_design_allows(folder: str) -> None:
    files = [p for p in (ROOT / folder).rglob("*.py") if not any(e in p.parents for e in EXEMPT)]
    broken = {
        str(p.relative_to(ROOT)): sorted(_imported_roots(p) & FORBIDDEN[folder])
        for p in files
        if _imported_roots(p) & FORBIDDEN[folder]
    }
    assert not broken, f"imports that cross a line of DESIGN.md: {broken}"

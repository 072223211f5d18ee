"""Every module's ``__all__`` names only what exists, and lists each public class or function it defines.

(ruff's RUF022 keeps each ``__all__`` sorted.)"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

pytestmark = pytest.mark.unit

PACKAGES = ["edgefleet", "train", "export", "edge_agent", "fleet_server", "devices"]


def _modules() -> list[str]:
    names = []
    for package in PACKAGES:
        module = importlib.import_module(package)
        names.append(package)
        for info in pkgutil.walk_packages(module.__path__, prefix=f"{package}."):
            if ".migrations." in info.name or info.name.endswith("__main__"):
                continue  # alembic revisions and entry scripts are not importable API
            names.append(info.name)
    return names


def _defined_public(module: ModuleType) -> set[str]:
    return {
        name
        for name, obj in vars(module).items()
        if not name.startswith("_")
        and (inspect.isclass(obj) or inspect.isfunction(obj))
        and getattr(obj, "__module__", None) == module.__name__
    }


@pytest.mark.parametrize("name", _modules())
def test_all_is_complete_and_real(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    if exported is None:
        assert not _defined_public(module), f"{name} defines public names but has no __all__"
        return
    assert not [n for n in exported if not hasattr(module, n)], f"{name}.__all__ names what it does not have"
    missing = _defined_public(module) - set(exported)
    assert not missing, f"{name} defines public {sorted(missing)} but leaves them out of __all__"

"""The agent's tiny signed package serves the ARM64 test too."""

from __future__ import annotations

from tests.agent.conftest import tiny_package

__all__ = ["tiny_package"]

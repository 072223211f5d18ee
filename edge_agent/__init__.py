"""The edge agent: the on-device runtime (numpy, one inference runtime and paho-mqtt; never torch).

Names load on first use (PEP 562), so ``edgefleet --help``, which mounts the agent's command line,
does not load an inference runtime.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edge_agent.agent import Agent
    from edge_agent.settings import AgentSettings, BrokerSettings, SimulatedSourceSettings, load_settings

__all__ = ["Agent", "AgentSettings", "BrokerSettings", "SimulatedSourceSettings", "load_settings"]

_HOMES = {
    "Agent": "edge_agent.agent",
    "AgentSettings": "edge_agent.settings",
    "BrokerSettings": "edge_agent.settings",
    "SimulatedSourceSettings": "edge_agent.settings",
    "load_settings": "edge_agent.settings",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'edge_agent' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)

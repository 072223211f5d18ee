"""The edge agent: the on-device runtime (numpy, one inference runtime and paho-mqtt; never torch)."""

from __future__ import annotations

from edge_agent.agent import Agent
from edge_agent.settings import AgentSettings, BrokerSettings, SimulatedSourceSettings, load_settings

__all__ = ["Agent", "AgentSettings", "BrokerSettings", "SimulatedSourceSettings", "load_settings"]

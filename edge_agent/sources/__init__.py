"""Input sources: where the windows the model sees come from."""

from __future__ import annotations

from edge_agent.sources._protocol import Source
from edge_agent.sources.simulated import SimulatedSensor

__all__ = ["SimulatedSensor", "Source"]

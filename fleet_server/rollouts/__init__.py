"""Staged rollouts: waves of devices, gates on their health, pause, resume, abort, and the commands they send."""

from __future__ import annotations

from fleet_server.rollouts.commands import CommandPublisher
from fleet_server.rollouts.engine import RolloutEngine
from fleet_server.rollouts.spec import Gates, RolloutSpec, RolloutState, Selector, Wave

__all__ = ["CommandPublisher", "Gates", "RolloutEngine", "RolloutSpec", "RolloutState", "Selector", "Wave"]

"""Over-the-air model updates on the device: download, verify, stage, switch, and roll back when unhealthy."""

from __future__ import annotations

from edge_agent.updates.health import HealthWindow, Verdict, Vitals
from edge_agent.updates.journal import Journal, Step, UpdateRecord
from edge_agent.updates.slots import Pointer, Slot, Slots
from edge_agent.updates.updater import ModelHost, Updater

__all__ = [
    "HealthWindow",
    "Journal",
    "ModelHost",
    "Pointer",
    "Slot",
    "Slots",
    "Step",
    "UpdateRecord",
    "Updater",
    "Verdict",
    "Vitals",
]

"""The agent's fixtures (tiny package, broker, subscriber) serve the emulator's tests too."""

from __future__ import annotations

from tests.agent.conftest import mqtt_broker, subscribe, tiny_package

__all__ = ["mqtt_broker", "subscribe", "tiny_package"]

"""Device profiles and the fleet emulator (real agent code, one thread per device)."""

from __future__ import annotations

from devices.emulator import Fleet
from devices.profiles import PROFILES, get_profile

__all__ = ["PROFILES", "Fleet", "get_profile"]

"""Device profiles and the fleet emulator (real agent code, one thread per device)."""

from __future__ import annotations

from devices.emulator import Fleet
from devices.profiles import PROFILES, get_profile
from devices.speed import ProfiledBackend

__all__ = ["PROFILES", "Fleet", "ProfiledBackend", "get_profile"]

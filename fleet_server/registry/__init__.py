"""The model registry: verified packages, their files in a content-addressed store, their records in the database."""

from __future__ import annotations

from fleet_server.registry.catalog import Admitted, NoTrustedKeys, PackageRegistry, Received, VersionTaken
from fleet_server.registry.store import PackageStore

__all__ = ["Admitted", "NoTrustedKeys", "PackageRegistry", "PackageStore", "Received", "VersionTaken"]

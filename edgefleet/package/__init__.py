"""The signed model package (``.efpkg``): build it, and open it without trusting it."""

from __future__ import annotations

from edgefleet.package._builder import build_package, canonical_manifest_bytes, describe_artifact, file_sha256
from edgefleet.package._format import KEY_LIST_NAME, MANIFEST_NAME, SIGNATURE_NAME, Limits
from edgefleet.package._reader import (
    OpenedPackage,
    VerifiedPackage,
    inspect_package,
    open_package,
    package_key_list,
    read_installed,
    verify_package,
)

__all__ = [
    "KEY_LIST_NAME",
    "MANIFEST_NAME",
    "SIGNATURE_NAME",
    "Limits",
    "OpenedPackage",
    "VerifiedPackage",
    "build_package",
    "canonical_manifest_bytes",
    "describe_artifact",
    "file_sha256",
    "inspect_package",
    "open_package",
    "package_key_list",
    "read_installed",
    "verify_package",
]

"""The archive layout of a ``.efpkg``: member names, size limits, and the name rule readers enforce."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

__all__ = ["DEFAULT_LIMITS", "KEY_LIST_NAME", "MANIFEST_NAME", "SIGNATURE_NAME", "Limits", "is_safe_member_name"]

MANIFEST_NAME: Final = "manifest.json"
SIGNATURE_NAME: Final = "signature.json"
# optional: the signing-key list the root key certified, so a package can bring a rotated key with it
KEY_LIST_NAME: Final = "keys.json"

# the same rule as edgefleet.ids.RelPath: relative, '/'-separated, no component starting with '.'
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*(?:/[A-Za-z0-9_][A-Za-z0-9._-]*)*$")


@dataclass(frozen=True, slots=True)
class Limits:
    """What a reader accepts before it looks any further; defaults fit models for small devices."""

    max_members: int = 64
    max_member_bytes: int = 512 * 1024 * 1024
    max_total_bytes: int = 1024 * 1024 * 1024
    max_manifest_bytes: int = 16 * 1024 * 1024
    max_signature_bytes: int = 4096


DEFAULT_LIMITS: Final = Limits()


def is_safe_member_name(name: str) -> bool:
    """True for a relative path that cannot leave the folder it is extracted into."""
    return len(name) <= 200 and _SAFE_NAME.fullmatch(name) is not None

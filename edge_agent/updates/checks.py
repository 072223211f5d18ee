"""Everything a downloaded package must pass before it may touch a slot, each refusal named for the fleet."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import edgefleet
from edge_agent.model import check_profile
from edgefleet.errors import (
    AgentError,
    DowngradeError,
    IntegrityError,
    ManifestError,
    PackageError,
    SignatureError,
    UnsafeArchiveError,
    UntrustedKeyError,
    UpdateError,
)
from edgefleet.package import VerifiedPackage, verify_package
from edgefleet.semver import parse_semver
from edgefleet.signing import TrustedKeys

__all__ = ["REASONS", "check_package"]

# the reason each refusal carries in the "failed" event, most specific class first
REASONS: Final[Mapping[type[PackageError], str]] = {
    UntrustedKeyError: "untrusted-key",
    SignatureError: "bad-signature",
    DowngradeError: "downgrade",
    IntegrityError: "tampered",
    UnsafeArchiveError: "unsafe-archive",
    ManifestError: "bad-manifest",
}
# room kept free beyond the extracted package, for the outbox and the logs
_DISK_MARGIN_BYTES: Final = 4 * 1024 * 1024


def check_package(
    path: Path,
    *,
    assigned: str,
    trusted: TrustedKeys,
    installed_version: str | None,
    allow_downgrade: bool,
    profile: str,
    slots_root: Path,
) -> VerifiedPackage:
    """Verify ``path`` for this device; raises UpdateError whose ``reason`` names what was refused.

    Signature (by a trusted key), the manifest and every file's sha256 (which also catches a manifest of one
    version mixed with artifacts of another), the version rule, that it is the package the command named,
    this device's profile, this agent's version, and room on the disk to extract it.
    """
    try:
        verified = verify_package(path, trusted, installed_version=installed_version, allow_rollback=allow_downgrade)
    except PackageError as err:
        reason = next((r for cls, r in REASONS.items() if isinstance(err, cls)), "refused")
        raise UpdateError(err.message, hint=err.hint, reason=reason) from err
    manifest = verified.manifest
    named = f"{manifest.name}@{manifest.version}"
    if named != assigned:
        raise UpdateError(
            f"the command assigned {assigned} but the package is {named}",
            hint="the server's registry and its rollout disagree: check the rollout's package",
            reason="mismatch",
        )
    try:
        check_profile(manifest, profile)
    except AgentError as err:
        raise UpdateError(err.message, hint=err.hint, reason="wrong-profile") from err
    if parse_semver(manifest.min_agent_version) > parse_semver(edgefleet.__version__):
        raise UpdateError(
            f"{named} needs agent {manifest.min_agent_version} or newer; this agent is {edgefleet.__version__}",
            hint="update the agent first",
            reason="agent-too-old",
        )
    # the extracted files take no more than the archive that holds them
    needed = path.stat().st_size + _DISK_MARGIN_BYTES
    free = shutil.disk_usage(slots_root if slots_root.exists() else slots_root.parent).free
    if free < needed:
        raise UpdateError(
            f"{named} needs {needed:,} bytes free to install, the disk has {free:,}",
            hint="free space on the device; the running model is left as it is",
            reason="disk-full",
        )
    return verified

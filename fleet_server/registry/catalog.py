"""The registry's records: admit a verified package, and look packages up by name, version or hash."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import groupby
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from edgefleet.errors import ConfigError, ServerError
from edgefleet.keylist import KeyRing
from edgefleet.package import VerifiedPackage, verify_package
from edgefleet.semver import parse_semver
from fleet_server.db.models import Package
from fleet_server.registry.store import PackageStore

__all__ = ["Admitted", "NoTrustedKeys", "PackageRegistry", "Received", "VersionTaken"]

log = logging.getLogger(__name__)


class NoTrustedKeys(ConfigError):
    """The server has no public keys to verify uploads against."""


class VersionTaken(ServerError):
    """A name@version already names other bytes."""


@dataclass(frozen=True, slots=True)
class Received:
    """An upload received completely into the store's incoming folder, hashed on the way in."""

    path: Path
    sha256: str
    size_bytes: int


@dataclass(frozen=True, slots=True)
class Admitted:
    package: Package
    is_new: bool


class PackageRegistry:
    """Verified packages: their files in a PackageStore, their records in the ``packages`` table."""

    def __init__(self, store: PackageStore, keys: KeyRing) -> None:
        self.store = store
        # a package that carries a newer root-signed key list teaches the ring its signing key
        self._trusted_keys = keys

    def check_accepting(self) -> None:
        """Raise NoTrustedKeys when no upload could be verified, so a caller can refuse before reading one."""
        if not self._trusted_keys and not self._trusted_keys.roots:
            raise NoTrustedKeys(
                "this server trusts no signing keys, so it cannot verify an uploaded package",
                hint="set EDGEFLEET_SERVER_TRUSTED_KEYS to a JSON list of public key files "
                "(e.g. '[\"/etc/edgefleet/signing.pub\"]'), or EDGEFLEET_SERVER_ROOT_KEYS to root keys, and "
                "restart the server",
            )

    def admit(self, session: Session, received: Received) -> Admitted:
        """Verify an upload and record it; the same bytes again give the existing record.

        Raises NoTrustedKeys when the server trusts no key, a PackageError naming what is wrong with the
        package, and VersionTaken when its name@version already names other bytes.
        """
        self.check_accepting()
        verified = verify_package(received.path, self._trusted_keys)
        existing = self._existing(session, received, verified)
        if existing is not None:
            # the record may outlive its file (a restored database): the upload puts it back
            self.store.commit(received.path, received.sha256)
            return Admitted(existing, is_new=False)
        self.store.commit(received.path, received.sha256)
        package = Package(
            name=verified.manifest.name,
            version=verified.manifest.version,
            file_sha256=received.sha256,
            manifest_sha256=verified.manifest_sha256,
            size_bytes=received.size_bytes,
            key_id=verified.key_id,
            manifest=verified.manifest.model_dump(mode="json", by_alias=True),
            uploaded_at=datetime.now(UTC),
        )
        session.add(package)
        try:
            session.commit()
        except IntegrityError:
            # a concurrent upload recorded the same bytes or the same version first
            session.rollback()
            existing = self._existing(session, received, verified)
            if existing is None:
                raise
            return Admitted(existing, is_new=False)
        log.info(
            "registry.admitted",
            extra={"package": f"{package.name}@{package.version}", "sha256": received.sha256},
        )
        return Admitted(package, is_new=True)

    def _existing(self, session: Session, received: Received, verified: VerifiedPackage) -> Package | None:
        """The record of these very bytes, or None; raises VersionTaken when other bytes hold the version."""
        same_bytes = self.by_sha256(session, received.sha256)
        if same_bytes is not None:
            return same_bytes
        name, version = verified.manifest.name, verified.manifest.version
        taken = self.by_version(session, name, version)
        if taken is not None:
            raise VersionTaken(
                f"{name}@{version} is already in the registry with other content (sha256 {taken.file_sha256}, "
                f"this upload {received.sha256})",
                hint="a version names one package forever: bump the version (e.g. to a new patch release) "
                "and build the package again",
            )
        return None

    def by_sha256(self, session: Session, sha256: str) -> Package | None:
        """The record of the package file with this sha256, or None."""
        return session.scalars(select(Package).where(Package.file_sha256 == sha256)).one_or_none()

    def by_version(self, session: Session, name: str, version: str) -> Package | None:
        """The record of name@version, or None."""
        query = select(Package).where(Package.name == name, Package.version == version)
        return session.scalars(query).one_or_none()

    def models(self, session: Session) -> list[tuple[str, list[Package]]]:
        """Every model name (sorted) with its packages, newest version first by semver precedence."""
        rows: Sequence[Package] = session.scalars(select(Package).order_by(Package.name)).all()
        return [
            (name, sorted(group, key=lambda p: (parse_semver(p.version), p.version), reverse=True))
            for name, group in groupby(rows, key=lambda p: p.name)
        ]

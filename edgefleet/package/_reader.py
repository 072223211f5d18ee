"""Read a ``.efpkg`` without trusting it: every header, size, hash and the signature are checked
before a byte is written, and files are only ever written inside the target folder.

Hand-written on top of ``tarfile`` because its own extraction filters (PEP 706) guard paths and
links but not sizes, duplicates, unknown members or hashes, and they write before they have seen
the whole archive.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import shutil
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from pydantic import ValidationError

from edgefleet.errors import (
    DowngradeError,
    InputError,
    IntegrityError,
    KeyListError,
    ManifestError,
    PackageError,
    SignatureError,
    UnsafeArchiveError,
)
from edgefleet.keylist import KeyRing, SignedKeyListV1, parse_key_list
from edgefleet.manifest import Artifact, Manifest
from edgefleet.package._format import (
    DEFAULT_LIMITS,
    KEY_LIST_NAME,
    MANIFEST_NAME,
    SIGNATURE_NAME,
    Limits,
    is_safe_member_name,
)
from edgefleet.semver import parse_semver
from edgefleet.signing import SignatureV1, TrustedKeys, verify_signature

__all__ = [
    "OpenedPackage",
    "VerifiedPackage",
    "inspect_package",
    "open_package",
    "package_key_list",
    "read_installed",
    "verify_package",
]

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
# what tarfile raises on a corrupt archive, besides its own TarError
_TAR_FAILURES = (tarfile.TarError, EOFError, ValueError, OverflowError, UnicodeError)
_REFETCH = "fetch the package again from its source; if it keeps failing, rebuild it"
_REINSTALL = "install the package again"


@dataclass(frozen=True, slots=True)
class VerifiedPackage:
    manifest: Manifest
    manifest_sha256: str
    key_id: str


@dataclass(frozen=True, slots=True)
class OpenedPackage:
    manifest: Manifest
    manifest_sha256: str
    key_id: str
    root: Path

    def artifact_path(self, artifact: Artifact) -> Path:
        """Where ``artifact`` was extracted."""
        return self.root / artifact.path


def inspect_package(path: Path, *, limits: Limits = DEFAULT_LIMITS) -> Manifest:
    """The manifest of a package read safely, WITHOUT checking its signature or file hashes.

    Raises PackageError when the archive is unsafe or the manifest invalid.
    """
    with _open_tar(path) as tar:
        members = _scan(tar, limits)
        manifest_bytes = _read_small(tar, members, MANIFEST_NAME, limits.max_manifest_bytes)
        return _parse_manifest(manifest_bytes)


def verify_package(
    path: Path,
    trusted_keys: TrustedKeys,
    *,
    installed_version: str | None = None,
    allow_rollback: bool = False,
    limits: Limits = DEFAULT_LIMITS,
) -> VerifiedPackage:
    """Check a package completely (archive, signature, manifest, version rule, every file's hash), writing nothing.

    Raises a PackageError subclass that names the first problem found.
    """
    with _open_tar(path) as tar:
        verified, members = _verify_head(tar, trusted_keys, installed_version, allow_rollback, limits)
        for artifact in verified.manifest.artifacts:
            _copy_checked(tar, members[artifact.path], artifact, None)
    return verified


def open_package(
    path: Path,
    target: Path,
    trusted_keys: TrustedKeys,
    *,
    installed_version: str | None = None,
    allow_rollback: bool = False,
    limits: Limits = DEFAULT_LIMITS,
) -> OpenedPackage:
    """Verify a package and extract it into ``target`` (absent or empty), all or nothing.

    Raises a PackageError subclass naming the problem, or InputError when ``target`` is not empty;
    on any failure ``target`` is left as it was found.
    """
    target_existed = target.exists()
    if target_existed and (not target.is_dir() or any(target.iterdir())):
        raise InputError(f"{target} is not an empty folder", hint="extract into a new or empty folder")
    target.mkdir(parents=True, exist_ok=True)
    # the staging folder is inside target, so nothing is ever written anywhere else
    staging = target / f".partial-{secrets.token_hex(6)}"
    staging.mkdir()
    try:
        with _open_tar(path) as tar:
            verified, members = _verify_head(tar, trusted_keys, installed_version, allow_rollback, limits)
            for artifact in verified.manifest.artifacts:
                _copy_checked(tar, members[artifact.path], artifact, staging)
            manifest_bytes = _read_small(tar, members, MANIFEST_NAME, limits.max_manifest_bytes)
            signature_bytes = _read_small(tar, members, SIGNATURE_NAME, limits.max_signature_bytes)
        _write_new(staging / MANIFEST_NAME, manifest_bytes)
        _write_new(staging / SIGNATURE_NAME, signature_bytes)
        for child in staging.iterdir():
            os.rename(child, target / child.name)
        staging.rmdir()
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if not target_existed:
            shutil.rmtree(target, ignore_errors=True)
        raise
    return OpenedPackage(verified.manifest, verified.manifest_sha256, verified.key_id, target)


def read_installed(root: Path, trusted_keys: TrustedKeys, *, limits: Limits = DEFAULT_LIMITS) -> OpenedPackage:
    """A package extracted by ``open_package``, checked again as if it came from outside: signature, manifest and
    every artifact's size and sha256 (a disk can rot, a power cut can cut a file, a hand can edit one).

    Raises a PackageError subclass naming the first problem found.
    """
    manifest_bytes = _read_file(root / MANIFEST_NAME, limits.max_manifest_bytes, ManifestError)
    signature_bytes = _read_file(root / SIGNATURE_NAME, limits.max_signature_bytes, SignatureError)
    try:
        signature = SignatureV1.model_validate_json(signature_bytes)
    except ValidationError as err:
        raise SignatureError(f"{SIGNATURE_NAME} is malformed: {_first_error(err)}", hint=_REINSTALL) from err
    verify_signature(manifest_bytes, signature, trusted_keys)
    manifest = _parse_manifest(manifest_bytes)
    for artifact in manifest.artifacts:
        path = root / artifact.path
        if path.is_symlink() or not path.is_file():
            raise IntegrityError(f"{path} is missing", hint=_REINSTALL)
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
        if path.stat().st_size != artifact.size_bytes or digest.hexdigest() != artifact.sha256:
            raise IntegrityError(f"{path} does not match the sha256 in its signed manifest", hint=_REINSTALL)
    return OpenedPackage(manifest, hashlib.sha256(manifest_bytes).hexdigest(), signature.key_id, root)


def _read_file(path: Path, limit: int, missing: type[PackageError]) -> bytes:
    try:
        with path.open("rb") as fh:
            data = fh.read(limit + 1)
    except OSError as err:
        raise missing(f"cannot read {path}: {err.strerror or err}", hint=_REINSTALL) from err
    if len(data) > limit:
        raise UnsafeArchiveError(f"{path} is over the limit of {limit} bytes", hint=_REINSTALL)
    return data


@contextmanager
def _open_tar(path: Path) -> Iterator[tarfile.TarFile]:
    if not path.is_file():
        raise InputError(f"{path} is not a file", hint="pass the path of a .efpkg package")
    try:
        # "r:" reads plain tar only: a compressed stream cannot blow up behind a small file
        with path.open("rb") as fh, tarfile.open(fileobj=fh, mode="r:") as tar:
            yield tar
    except _TAR_FAILURES as err:
        raise UnsafeArchiveError(f"{path} is not a readable package archive: {err}", hint=_REFETCH) from err


def _scan(tar: tarfile.TarFile, limits: Limits) -> dict[str, tarfile.TarInfo]:
    """Every member header, checked for name, type and size before any content is read."""
    members: dict[str, tarfile.TarInfo] = {}
    total = 0
    while (info := tar.next()) is not None:
        name = info.name
        if len(members) >= limits.max_members:
            raise UnsafeArchiveError(f"the archive has more than {limits.max_members} members", hint=_REFETCH)
        if not is_safe_member_name(name):
            raise UnsafeArchiveError(
                f"member {name!r} has an unsafe name (absolute, '..', hidden or odd characters)", hint=_REFETCH
            )
        if not info.isreg() or info.issparse():
            raise UnsafeArchiveError(f"member {name!r} is a {_kind(info)}, not a regular file", hint=_REFETCH)
        if name in members:
            raise UnsafeArchiveError(f"member {name!r} appears twice", hint=_REFETCH)
        if info.size > limits.max_member_bytes:
            raise UnsafeArchiveError(
                f"member {name!r} is {info.size} bytes, over the limit of {limits.max_member_bytes}", hint=_REFETCH
            )
        total += info.size
        if total > limits.max_total_bytes:
            raise UnsafeArchiveError(f"the archive unpacks to more than {limits.max_total_bytes} bytes", hint=_REFETCH)
        members[name] = info
    return members


def _kind(info: tarfile.TarInfo) -> str:
    kinds = [
        (info.issym(), "symbolic link"),
        (info.islnk(), "hard link"),
        (info.isdir(), "directory"),
        (info.ischr() or info.isblk(), "device file"),
        (info.isfifo(), "FIFO"),
        (info.issparse(), "sparse file"),
    ]
    return next((label for matches, label in kinds if matches), f"member of type {info.type!r}")


def _verify_head(
    tar: tarfile.TarFile,
    trusted_keys: TrustedKeys,
    installed_version: str | None,
    allow_rollback: bool,
    limits: Limits,
) -> tuple[VerifiedPackage, dict[str, tarfile.TarInfo]]:
    """Headers, signature, manifest, member list and version rule: everything but the file hashes."""
    members = _scan(tar, limits)
    manifest_bytes = _read_small(tar, members, MANIFEST_NAME, limits.max_manifest_bytes)
    signature_bytes = _read_small(tar, members, SIGNATURE_NAME, limits.max_signature_bytes)
    try:
        signature = SignatureV1.model_validate_json(signature_bytes)
    except ValidationError as err:
        raise SignatureError(f"{SIGNATURE_NAME} is malformed: {_first_error(err)}", hint=_REFETCH) from err
    if KEY_LIST_NAME in members and isinstance(trusted_keys, KeyRing):
        _learn_keys(trusted_keys, _read_small(tar, members, KEY_LIST_NAME, limits.max_signature_bytes * 8))
    # the signature is checked before the manifest is parsed, so only signed bytes reach the parser
    verify_signature(manifest_bytes, signature, trusted_keys)
    manifest = _parse_manifest(manifest_bytes)
    expected = {MANIFEST_NAME, SIGNATURE_NAME} | {a.path for a in manifest.artifacts} | ({KEY_LIST_NAME} & set(members))
    unknown, missing = sorted(set(members) - expected), sorted(expected - set(members))
    if unknown or missing:
        raise ManifestError(
            f"the archive and its manifest disagree: unknown files {unknown}, missing files {missing}",
            hint=_REFETCH,
        )
    _check_version(manifest, installed_version, allow_rollback)
    verified = VerifiedPackage(manifest, hashlib.sha256(manifest_bytes).hexdigest(), signature.key_id)
    return verified, members


def _learn_keys(ring: KeyRing, data: bytes) -> None:
    """Adopt the package's key list when the root signed it and it is newer than the ring's; a list that does not
    hold is only logged, because the package's own signature is what decides."""
    try:
        ring.offer(parse_key_list(data))
    except KeyListError as err:
        log.warning("package.key_list_ignored", extra={"error": err.message})


def package_key_list(path: Path, *, limits: Limits = DEFAULT_LIMITS) -> SignedKeyListV1 | None:
    """The key list a package carries, not verified; None when it carries none. Raises PackageError."""
    with _open_tar(path) as tar:
        members = _scan(tar, limits)
        if KEY_LIST_NAME not in members:
            return None
        return parse_key_list(_read_small(tar, members, KEY_LIST_NAME, limits.max_signature_bytes * 8))


def _check_version(manifest: Manifest, installed_version: str | None, allow_rollback: bool) -> None:
    if installed_version is None or allow_rollback:
        return
    if parse_semver(manifest.version) < parse_semver(installed_version):
        raise DowngradeError(
            f"{manifest.name} {manifest.version} is older than the installed {installed_version}",
            hint="versions only go forward; an operator can roll back explicitly (allow_rollback)",
        )


def _read_small(tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo], name: str, limit: int) -> bytes:
    info = members.get(name)
    if info is None:
        raise (SignatureError if name == SIGNATURE_NAME else ManifestError)(
            f"the package has no {name}", hint="only packages built by `edgefleet package build` are accepted"
        )
    if info.size > limit:
        raise UnsafeArchiveError(f"{name} is {info.size} bytes, over the limit of {limit}", hint=_REFETCH)
    with _member_stream(tar, info) as stream:
        data = stream.read(info.size + 1)
    if len(data) != info.size:
        raise IntegrityError(f"{name} is cut short: {len(data)} of {info.size} bytes", hint=_REFETCH)
    return data


def _copy_checked(tar: tarfile.TarFile, info: tarfile.TarInfo, artifact: Artifact, staging: Path | None) -> None:
    """Stream one artifact, checking size and sha256; written under ``staging`` when one is given.

    Inside ``staging`` a bad artifact may be half written; open_package removes the whole folder then.
    """
    if info.size != artifact.size_bytes:
        raise IntegrityError(
            f"{artifact.path} is {info.size} bytes, the manifest says {artifact.size_bytes}", hint=_REFETCH
        )
    digest = hashlib.sha256()
    size = 0
    sink_context = _new_file(staging / artifact.path) if staging is not None else nullcontext(None)
    with _member_stream(tar, info) as stream, sink_context as sink:
        while size < info.size and (chunk := stream.read(min(_CHUNK, info.size - size))):
            digest.update(chunk)
            size += len(chunk)
            if sink is not None:
                sink.write(chunk)
    if size != artifact.size_bytes or digest.hexdigest() != artifact.sha256:
        raise IntegrityError(
            f"{artifact.path} does not match the sha256 in the manifest ({size} bytes read)", hint=_REFETCH
        )


@contextmanager
def _member_stream(tar: tarfile.TarFile, info: tarfile.TarInfo) -> Iterator[IO[bytes]]:
    try:
        stream = tar.extractfile(info)
        if stream is None:
            raise UnsafeArchiveError(f"member {info.name!r} has no content", hint=_REFETCH)
        with stream:
            yield stream
    except _TAR_FAILURES as err:
        raise IntegrityError(f"member {info.name!r} cannot be read: {err}", hint=_REFETCH) from err


@contextmanager
def _new_file(path: Path) -> Iterator[IO[bytes]]:
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL and O_NOFOLLOW: never write through something that is already there
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as fh:
        yield fh
        fh.flush()
        os.fsync(fh.fileno())


def _write_new(path: Path, data: bytes) -> None:
    with _new_file(path) as fh:
        fh.write(data)


def _parse_manifest(data: bytes) -> Manifest:
    try:
        return Manifest.model_validate_json(data)
    except ValidationError as err:
        raise ManifestError(f"the manifest breaks schema ef.manifest.v1: {_first_error(err)}", hint=_REFETCH) from err


def _first_error(err: ValidationError) -> str:
    first = err.errors(include_url=False)[0]
    where = ".".join(str(p) for p in first["loc"]) or "(top level)"
    more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"

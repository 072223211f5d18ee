"""Write a signed ``.efpkg``: a plain tar with the manifest, its signature, then the files it names."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import tempfile
from collections.abc import Mapping
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgefleet.errors import InputError
from edgefleet.keylist import SignedKeyListV1
from edgefleet.manifest import Artifact, ArtifactFormat, Manifest, Precision
from edgefleet.package._format import KEY_LIST_NAME, MANIFEST_NAME, SIGNATURE_NAME
from edgefleet.signing import sign

__all__ = ["build_package", "canonical_manifest_bytes", "describe_artifact", "file_sha256"]

_CHUNK = 1 << 20


def file_sha256(path: Path) -> tuple[str, int]:
    """The sha256 (hex) and size of a file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def describe_artifact(
    path_in_package: str, file: Path, *, format: ArtifactFormat, precision: Precision, runtime: str
) -> Artifact:
    """The manifest entry of a model file, with its sha256 and size; raises InputError when it is unreadable."""
    try:
        sha256, size = file_sha256(file)
    except OSError as err:
        raise InputError(f"cannot read the model file {file}: {err}", hint="check the path") from err
    return Artifact(
        path=path_in_package, format=format, precision=precision, runtime=runtime, sha256=sha256, size_bytes=size
    )


def canonical_manifest_bytes(manifest: Manifest) -> bytes:
    """The exact bytes that are stored and signed: sorted keys, no whitespace, ASCII only."""
    data = manifest.model_dump(mode="json", by_alias=True)
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def build_package(
    manifest: Manifest,
    files: Mapping[str, Path],
    private_key: Ed25519PrivateKey,
    out: Path,
    *,
    key_list: SignedKeyListV1 | None = None,
) -> Path:
    """Sign ``manifest`` and write it with ``files`` (path in package → file) to ``out``, atomically; ``key_list``
    (the root-signed list that names the signing key) travels along, so devices learn a rotated key from it.

    Raises InputError when the files and the manifest's artifacts disagree, so a package is never
    built that its own readers would refuse.
    """
    declared = {a.path: a for a in manifest.artifacts}
    if set(files) != set(declared):
        raise InputError(
            f"the manifest names {sorted(declared)} but the files given are {sorted(files)}",
            hint="pass exactly one file per artifact in the manifest",
        )
    for name, file in files.items():
        sha256, size = file_sha256(file)
        if (sha256, size) != (declared[name].sha256, declared[name].size_bytes):
            raise InputError(
                f"{file} changed since its manifest entry {name} was made",
                hint="describe the artifact again with describe_artifact() after the file is final",
            )
    manifest_bytes = canonical_manifest_bytes(manifest)
    signature_bytes = sign(manifest_bytes, private_key).model_dump_json(by_alias=True).encode()
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as fh, tarfile.open(fileobj=fh, mode="w", format=tarfile.PAX_FORMAT) as tar:
            _add_bytes(tar, MANIFEST_NAME, manifest_bytes)
            _add_bytes(tar, SIGNATURE_NAME, signature_bytes)
            if key_list is not None:
                _add_bytes(tar, KEY_LIST_NAME, key_list.model_dump_json(by_alias=True).encode())
            for name in sorted(files):
                with files[name].open("rb") as src:
                    tar.addfile(_member(name, declared[name].size_bytes), src)
        os.replace(tmp_name, out)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return out


def _member(name: str, size: int) -> tarfile.TarInfo:
    # fixed owner, mode and time, so the same inputs give the same bytes
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = 0
    return info


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    tar.addfile(_member(name, len(data)), io.BytesIO(data))

"""Ed25519 keys and signatures over a package's manifest bytes (schema ``ef.signature.v1``)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import Field

from edgefleet._contract import Contract
from edgefleet.errors import InputError, SignatureError, UntrustedKeyError

__all__ = [
    "PRIVATE_KEY_FILE",
    "PUBLIC_KEY_FILE",
    "SignatureV1",
    "TrustedKeys",
    "generate_keys",
    "key_id",
    "load_private_key",
    "load_public_keys",
    "sign",
    "verify_signature",
]

PRIVATE_KEY_FILE = "signing.key"
PUBLIC_KEY_FILE = "signing.pub"

TrustedKeys = Mapping[str, Ed25519PublicKey]


class SignatureV1(Contract):
    schema_: Literal["ef.signature.v1"] = Field(default="ef.signature.v1", alias="schema")
    algorithm: Literal["ed25519"] = "ed25519"
    key_id: str = Field(pattern=r"^[0-9a-f]{16}$")
    signature_b64: str = Field(max_length=128)


def key_id(public_key: Ed25519PublicKey) -> str:
    """The first 16 hex digits of the sha256 of the raw public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def generate_keys(out_dir: Path, *, overwrite: bool = False) -> tuple[Path, Path]:
    """Write a new key pair into ``out_dir`` (private key mode 0600); raises InputError rather than overwrite."""
    out_dir.mkdir(parents=True, exist_ok=True)
    private_path, public_path = out_dir / PRIVATE_KEY_FILE, out_dir / PUBLIC_KEY_FILE
    if not overwrite and (private_path.exists() or public_path.exists()):
        raise InputError(
            f"{private_path} or {public_path} already exists",
            hint="choose another --out folder, or pass --overwrite to replace the keys (packages signed "
            "with the old key will no longer verify against the new one)",
        )
    private_key = Ed25519PrivateKey.generate()
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # created with 0600 from the start, so the key is never readable by others, not even briefly
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    os.chmod(private_path, 0o600)
    public_path.write_bytes(
        private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private_path, public_path


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Read a PEM Ed25519 private key; raises InputError when it is missing or of another kind."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as err:
        raise InputError(
            f"cannot read the signing key {path}: {err}",
            hint="pass the signing.key written by `edgefleet keys generate`",
        ) from err
    if not isinstance(key, Ed25519PrivateKey):
        raise InputError(f"{path} is not an Ed25519 private key", hint="create one with `edgefleet keys generate`")
    return key


def load_public_keys(paths: Iterable[Path]) -> dict[str, Ed25519PublicKey]:
    """Read PEM Ed25519 public keys into a key-id → key map; raises InputError on an unreadable file."""
    keys: dict[str, Ed25519PublicKey] = {}
    for path in paths:
        try:
            key = serialization.load_pem_public_key(path.read_bytes())
        except (OSError, ValueError) as err:
            raise InputError(
                f"cannot read the public key {path}: {err}",
                hint="pass the signing.pub written by `edgefleet keys generate`",
            ) from err
        if not isinstance(key, Ed25519PublicKey):
            raise InputError(f"{path} is not an Ed25519 public key", hint="pass an Ed25519 signing.pub")
        keys[key_id(key)] = key
    return keys


def sign(data: bytes, private_key: Ed25519PrivateKey) -> SignatureV1:
    """Sign ``data`` and name the key that did."""
    signature = private_key.sign(data)
    return SignatureV1(key_id=key_id(private_key.public_key()), signature_b64=base64.b64encode(signature).decode())


def verify_signature(data: bytes, signature: SignatureV1, trusted: TrustedKeys) -> None:
    """Check ``signature`` over ``data``; raises UntrustedKeyError or SignatureError when it does not hold."""
    public_key = trusted.get(signature.key_id)
    if public_key is None:
        raise UntrustedKeyError(
            f"the package is signed with key {signature.key_id}, which is not among the trusted keys "
            f"({', '.join(sorted(trusted)) or 'none given'})",
            hint="pass the signer's public key with --trust, or get a package signed with a trusted key",
        )
    try:
        public_key.verify(base64.b64decode(signature.signature_b64, validate=True), data)
    except (InvalidSignature, binascii.Error, ValueError) as err:
        raise SignatureError(
            f"the signature of key {signature.key_id} does not match the manifest",
            hint="the package was altered after signing: rebuild it, or fetch it again from its source",
        ) from err

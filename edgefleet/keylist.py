"""Rotate package-signing keys without re-flashing a device: an offline root key signs a small, versioned list of
the signing keys (``ef.keylist.v1``), and a reader trusts the keys the newest list it has seen names.

Hand-written rather than python-tuf: a TUF repository (root, targets, snapshot and timestamp roles) is far more
than one key list needs, and its metadata would be a second package format beside ``.efpkg``. The rules are
TUF's where they apply:
- a list replaces only one of a lower version, so an attacker cannot bring back a revoked key (rollback);
- an expired list authorises no new install, so withholding newer lists cannot freeze a device on old keys
  forever (freeze); packages already installed stay trusted, so a device keeps running what it has;
- a key the newer list leaves out is revoked.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import AwareDatetime, Field, ValidationError

from edgefleet._contract import Contract
from edgefleet.errors import InputError, KeyListError, SignatureError
from edgefleet.signing import SignatureV1, TrustedKeys, key_id, sign, verify_signature

__all__ = [
    "KEY_LIST_FILE",
    "MAX_KEY_LIST_BYTES",
    "KeyList",
    "KeyListV1",
    "KeyRing",
    "ListedKey",
    "SignedKeyListV1",
    "certify_keys",
    "load_key_list",
    "open_key_list",
    "parse_key_list",
]

log = logging.getLogger(__name__)

KEY_LIST_FILE: Final = "keys.json"
MAX_KEY_LIST_BYTES: Final = 16 * 1024
_ROTATE = "have the root key sign a new list: `edgefleet keys certify`"


class ListedKey(Contract):
    key_id: str = Field(pattern=r"^[0-9a-f]{16}$")
    public_key_b64: str = Field(max_length=64, description="the raw 32-byte Ed25519 public key, base64")


class KeyListV1(Contract):
    """The signed content: which keys may sign packages, until when, and which list this is."""

    schema_: Literal["ef.keylist.v1"] = Field(default="ef.keylist.v1", alias="schema")
    version: int = Field(ge=1, le=2**31 - 1, description="a reader only ever moves to a higher version")
    expires: AwareDatetime = Field(description="after this, the list authorises no new install")
    keys: list[ListedKey] = Field(min_length=1, max_length=32)


class SignedKeyListV1(Contract):
    """The file (``keys.json``): the list's exact bytes and the root key's signature over them."""

    schema_: Literal["ef.signed-keylist.v1"] = Field(default="ef.signed-keylist.v1", alias="schema")
    payload_b64: str = Field(max_length=MAX_KEY_LIST_BYTES)
    signature: SignatureV1


@dataclass(frozen=True, slots=True)
class KeyList:
    """A list whose root signature has been checked."""

    version: int
    expires: datetime
    keys: dict[str, Ed25519PublicKey]
    root_key_id: str
    signed: SignedKeyListV1


def certify_keys(
    keys: Sequence[Ed25519PublicKey], root: Ed25519PrivateKey, *, version: int, expires: datetime
) -> SignedKeyListV1:
    """The list of ``keys`` at ``version``, signed by ``root``; raises KeyListError when it would be refused."""
    try:
        content = KeyListV1(
            version=version,
            expires=expires,
            keys=[
                ListedKey(
                    key_id=key_id(key),
                    public_key_b64=base64.b64encode(
                        key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
                    ).decode(),
                )
                for key in {key_id(k): k for k in keys}.values()
            ],
        )
    except ValidationError as err:
        raise KeyListError(f"the key list is not valid: {_first_error(err)}", hint=_ROTATE) from err
    payload = json.dumps(content.model_dump(mode="json"), sort_keys=True, separators=(",", ":")).encode()
    return SignedKeyListV1(payload_b64=base64.b64encode(payload).decode(), signature=sign(payload, root))


def parse_key_list(data: bytes) -> SignedKeyListV1:
    """A key-list file's envelope, not yet verified; raises KeyListError when it is too large or malformed."""
    if len(data) > 2 * MAX_KEY_LIST_BYTES:
        raise KeyListError(f"the key list is {len(data)} bytes, over the limit of {2 * MAX_KEY_LIST_BYTES}")
    try:
        return SignedKeyListV1.model_validate_json(data)
    except ValidationError as err:
        raise KeyListError(
            f"the key list is malformed: {_first_error(err)}", hint="pass a keys.json from `edgefleet keys certify`"
        ) from err


def load_key_list(path: Path) -> SignedKeyListV1:
    """Read a ``keys.json``; raises InputError when the file cannot be read, KeyListError when it is malformed."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise InputError(
            f"cannot read the key list {path}: {err.strerror or err}",
            hint="pass the keys.json written by `edgefleet keys certify`",
        ) from err
    return parse_key_list(data)


def open_key_list(signed: SignedKeyListV1, roots: TrustedKeys) -> KeyList:
    """Check the root signature before reading a byte of the list; raises KeyListError when it does not hold."""
    try:
        payload = base64.b64decode(signed.payload_b64, validate=True)
        verify_signature(payload, signed.signature, roots)
    except SignatureError as err:
        raise KeyListError(
            f"the key list is not signed by a trusted root key (signed by {signed.signature.key_id}; "
            f"roots: {', '.join(sorted(roots)) or 'none given'})",
            hint="configure root_keys with the root.pub the list was certified with",
        ) from err
    except (binascii.Error, ValueError) as err:
        raise KeyListError("the key list's payload is not base64", hint=_ROTATE) from err
    try:
        content = KeyListV1.model_validate_json(payload)
    except ValidationError as err:
        raise KeyListError(f"the signed key list is malformed: {_first_error(err)}", hint=_ROTATE) from err
    keys: dict[str, Ed25519PublicKey] = {}
    for listed in content.keys:
        try:
            key = Ed25519PublicKey.from_public_bytes(base64.b64decode(listed.public_key_b64, validate=True))
        except (binascii.Error, ValueError) as err:
            raise KeyListError(f"key {listed.key_id} in the list is not an Ed25519 key", hint=_ROTATE) from err
        if key_id(key) != listed.key_id:
            raise KeyListError(f"key {listed.key_id} in the list does not match its id", hint=_ROTATE)
        keys[listed.key_id] = key
    return KeyList(content.version, content.expires, keys, signed.signature.key_id, signed)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _replace_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


class KeyRing(Mapping[str, Ed25519PublicKey]):
    """The keys a package may be signed with: keys pinned in the configuration, plus those of the newest list the
    root keys signed, kept at ``path`` so that a restart neither forgets nor rolls back a rotation.

    Looking up a key that only an expired list names raises KeyListError (a SignatureError), so the refusal says
    why instead of calling the key unknown. ``installed()`` is the view for packages already installed, which an
    expired list does not revoke.
    """

    def __init__(
        self,
        pinned: TrustedKeys,
        roots: TrustedKeys,
        path: Path | None = None,
        *,
        write: Callable[[Path, bytes], None] = _replace_file,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._pinned = dict(pinned)
        self._roots = dict(roots)
        self._path = path
        self._write = write
        self._clock = clock
        # lists arrive on several threads (the agent's loop and its updater; the server's requests and its
        # distributor): compare, write and adopt as one step, so an older list never overwrites a newer one
        self._adopting = threading.Lock()
        self._list: KeyList | None = self._load()

    @property
    def roots(self) -> TrustedKeys:
        return self._roots

    @property
    def current(self) -> KeyList | None:
        """The newest list adopted, expired or not."""
        return self._list

    @property
    def version(self) -> int | None:
        """The adopted list's version: 0 before the first, None when no root key is configured (lists are ignored)."""
        if not self._roots:
            return None
        return self._list.version if self._list is not None else 0

    def installed(self) -> TrustedKeys:
        """The same keys for re-checking packages already installed: an expired list still vouches for them."""
        return _Installed(self)

    def offer(self, signed: SignedKeyListV1) -> bool:
        """Adopt ``signed`` when the roots signed it and it is newer than the list held; True when adopted.

        An older or equal version is ignored (False): packages built before a rotation carry older lists.
        Raises KeyListError for a list that is not root-signed, malformed, or already expired.
        """
        opened = open_key_list(signed, self._roots)
        with self._adopting:
            if self._list is not None and opened.version <= self._list.version:
                return False
            if opened.expires <= self._clock():
                raise KeyListError(
                    f"key list version {opened.version} expired at {opened.expires.isoformat()}", hint=_ROTATE
                )
            if self._path is not None:
                self._write(self._path, signed.model_dump_json(by_alias=True).encode())
            self._list = opened
        log.info(
            "keys.adopted",
            extra={"version": opened.version, "keys": sorted(opened.keys), "expires": opened.expires.isoformat()},
        )
        return True

    def __getitem__(self, kid: str) -> Ed25519PublicKey:
        return self.lookup(kid, honour_expiry=True)

    def lookup(self, kid: str, *, honour_expiry: bool) -> Ed25519PublicKey:
        """The key ``kid``; raises KeyError when no one vouches for it, KeyListError when only an expired list does."""
        if kid in self._pinned:
            return self._pinned[kid]
        if self._list is None or kid not in self._list.keys:
            raise KeyError(kid)
        if honour_expiry and self._expired():
            raise KeyListError(
                f"key {kid} is named only by key list version {self._list.version}, which expired at "
                f"{self._list.expires.isoformat()}",
                hint=_ROTATE + ", and send it to the fleet (`edgefleet keys publish`)",
            )
        return self._list.keys[kid]

    def __contains__(self, kid: object) -> bool:
        return isinstance(kid, str) and kid in self.usable(honour_expiry=True)

    def __iter__(self) -> Iterator[str]:
        return iter(self.usable(honour_expiry=True))

    def __len__(self) -> int:
        return len(self.usable(honour_expiry=True))

    def usable(self, *, honour_expiry: bool) -> dict[str, Ed25519PublicKey]:
        """Every key a signature may come from now."""
        listed = self._list.keys if self._list is not None and not (honour_expiry and self._expired()) else {}
        return listed | self._pinned

    def _expired(self) -> bool:
        return self._list is not None and self._list.expires <= self._clock()

    def _load(self) -> KeyList | None:
        if self._path is None or not self._roots or not self._path.exists():
            return None
        try:
            return open_key_list(parse_key_list(self._path.read_bytes()), self._roots)
        except (OSError, KeyListError) as err:
            # the pinned keys still work, and the next list offered is adopted again
            log.warning("keys.stored_list_unreadable", extra={"path": str(self._path), "error": str(err)})
            return None


class _Installed(Mapping[str, Ed25519PublicKey]):
    """A ring's keys with its list's expiry ignored, following the ring as it adopts newer lists."""

    def __init__(self, ring: KeyRing) -> None:
        self._ring = ring

    def __getitem__(self, kid: str) -> Ed25519PublicKey:
        return self._ring.lookup(kid, honour_expiry=False)

    def __iter__(self) -> Iterator[str]:
        return iter(self._ring.usable(honour_expiry=False))

    def __len__(self) -> int:
        return len(self._ring.usable(honour_expiry=False))


def _first_error(err: ValidationError) -> str:
    first = err.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "the file"
    return f"{where}: {first['msg']}"

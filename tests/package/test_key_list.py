"""Signing keys rotate without re-flashing: a root key certifies a versioned, expiring list of signing keys, and a
reader trusts what the newest list it has seen names (TUF's rollback, freeze and revocation rules)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgefleet.errors import KeyListError, UntrustedKeyError
from edgefleet.keylist import KeyRing, SignedKeyListV1, certify_keys, open_key_list, parse_key_list
from edgefleet.package import open_package as extract
from edgefleet.package import package_key_list, read_installed, verify_package
from edgefleet.signing import key_id, sign
from tests.factories import make_package

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 25, tzinfo=UTC)


class Keys:
    def __init__(self) -> None:
        self.root = Ed25519PrivateKey.generate()
        self.a = Ed25519PrivateKey.generate()
        self.b = Ed25519PrivateKey.generate()

    @property
    def roots(self) -> dict:
        return {key_id(self.root.public_key()): self.root.public_key()}

    def certify(self, *signers: Ed25519PrivateKey, version: int, days: float = 30) -> SignedKeyListV1:
        return certify_keys(
            [s.public_key() for s in signers], self.root, version=version, expires=NOW + timedelta(days=days)
        )


@pytest.fixture
def keys() -> Keys:
    return Keys()


def _ring(keys: Keys, path: Path | None = None, now: datetime = NOW) -> KeyRing:
    return KeyRing({}, keys.roots, path, clock=lambda: now)


def test_a_list_the_root_signed_opens_and_names_its_keys(keys: Keys) -> None:
    opened = open_key_list(keys.certify(keys.a, keys.b, version=3), keys.roots)
    assert opened.version == 3
    assert set(opened.keys) == {key_id(keys.a.public_key()), key_id(keys.b.public_key())}
    assert opened.root_key_id == key_id(keys.root.public_key())


def test_a_list_not_signed_by_a_root_or_altered_is_refused(keys: Keys) -> None:
    forged = certify_keys([keys.a.public_key()], keys.a, version=9, expires=NOW + timedelta(days=1))
    with pytest.raises(KeyListError, match="not signed by a trusted root key"):
        open_key_list(forged, keys.roots)
    honest = keys.certify(keys.a, version=1)
    payload = json.loads(base64.b64decode(honest.payload_b64))
    payload["version"] = 99
    altered = honest.model_copy(update={"payload_b64": base64.b64encode(json.dumps(payload).encode()).decode()})
    with pytest.raises(KeyListError, match="not signed by a trusted root key"):
        open_key_list(altered, keys.roots)


def test_a_listed_key_that_does_not_match_its_id_is_refused(keys: Keys) -> None:
    raw = base64.b64decode(keys.certify(keys.a, version=1).payload_b64)
    payload = json.loads(raw)
    payload["keys"][0]["key_id"] = key_id(keys.b.public_key())
    data = json.dumps(payload).encode()
    mislabelled = SignedKeyListV1(payload_b64=base64.b64encode(data).decode(), signature=sign(data, keys.root))
    with pytest.raises(KeyListError, match="does not match its id"):
        open_key_list(mislabelled, keys.roots)


def test_only_a_newer_list_is_adopted_and_a_key_it_leaves_out_is_revoked(keys: Keys) -> None:
    ring = _ring(keys)
    a, b = key_id(keys.a.public_key()), key_id(keys.b.public_key())
    assert ring.version == 0
    assert a not in ring
    assert ring.offer(keys.certify(keys.a, version=1))
    assert a in ring
    assert b not in ring
    assert ring.offer(keys.certify(keys.b, version=2))
    assert b in ring
    assert a not in ring
    # rollback: the older list that named A is ignored, so A stays revoked
    assert not ring.offer(keys.certify(keys.a, version=1))
    assert not ring.offer(keys.certify(keys.a, keys.b, version=2))  # the same version again changes nothing
    assert set(ring) == {b}
    assert ring.version == 2


def test_the_newest_list_survives_a_restart_and_a_restart_cannot_roll_it_back(keys: Keys, tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    _ring(keys, path).offer(keys.certify(keys.b, version=5))
    again = _ring(keys, path)
    assert again.version == 5
    assert not again.offer(keys.certify(keys.a, version=4))
    path.write_text("{not json")
    damaged = _ring(keys, path)  # pinned keys still work; the next list is adopted again
    assert damaged.version == 0


def test_an_expired_list_authorises_no_new_install_but_installed_packages_still_verify(
    keys: Keys, tmp_path: Path
) -> None:
    package = make_package(tmp_path, keys.a)
    today = [NOW]
    ring = KeyRing({}, keys.roots, tmp_path / "keys.json", clock=lambda: today[0])
    ring.offer(keys.certify(keys.a, version=1, days=1))
    installed = extract(package, tmp_path / "slot", ring)
    today[0] = NOW + timedelta(days=2)  # the attacker withheld every newer list: the device's list expired
    with pytest.raises(KeyListError, match="expired"):
        verify_package(package, ring)
    assert len(ring) == 0
    assert read_installed(installed.root, ring.installed()).manifest.name == "pump-vibration"
    with pytest.raises(KeyListError, match="expired"):
        ring.offer(keys.certify(keys.b, version=2, days=1))  # an already expired list is not adopted either
    assert ring.offer(keys.certify(keys.a, version=2, days=30))  # a fresh list from the root lifts the freeze
    assert verify_package(package, ring).key_id == key_id(keys.a.public_key())


def test_a_package_brings_the_list_that_certifies_its_new_signing_key(keys: Keys, tmp_path: Path) -> None:
    ring = _ring(keys)
    ring.offer(keys.certify(keys.a, version=1))
    rotated = make_package(tmp_path / "b", keys.b, version="2.0.0", key_list=keys.certify(keys.b, version=2))
    assert package_key_list(rotated) is not None
    verified = verify_package(rotated, ring)
    assert verified.key_id == key_id(keys.b.public_key())
    assert ring.version == 2
    # after the rotation a package signed with the revoked key is refused ...
    old = make_package(tmp_path / "a", keys.a, version="3.0.0")
    with pytest.raises(UntrustedKeyError):
        verify_package(old, ring)
    # ... even when it carries the old list that named its key
    replayed = make_package(tmp_path / "a2", keys.a, version="3.0.1", key_list=keys.certify(keys.a, version=1))
    with pytest.raises(UntrustedKeyError):
        verify_package(replayed, ring)


def test_a_list_forged_into_a_package_is_ignored_and_the_signature_decides(keys: Keys, tmp_path: Path) -> None:
    attacker = Ed25519PrivateKey.generate()
    forged = certify_keys([attacker.public_key()], attacker, version=100, expires=NOW + timedelta(days=1))
    evil = make_package(tmp_path, attacker, key_list=forged)
    ring = _ring(keys)
    with pytest.raises(UntrustedKeyError):
        verify_package(evil, ring)
    assert ring.version == 0


_FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
_ROOT = Ed25519PrivateKey.generate()
_ROOTS = {key_id(_ROOT.public_key()): _ROOT.public_key()}
_VALID = certify_keys(
    [Ed25519PrivateKey.generate().public_key()], _ROOT, version=3, expires=datetime(2100, 1, 1, tzinfo=UTC)
).model_dump_json(by_alias=True)


def _refused_or_unchanged(data: bytes) -> None:
    try:
        opened = open_key_list(parse_key_list(data), _ROOTS)
    except KeyListError:
        return
    original = open_key_list(parse_key_list(_VALID.encode()), _ROOTS)
    assert (opened.version, opened.expires, set(opened.keys)) == (
        original.version,
        original.expires,
        set(original.keys),
    ), "an accepted list says exactly what the root signed"


@_FUZZ
@given(data=st.binary(max_size=512))
def test_arbitrary_bytes_are_refused_as_a_key_list_error(data: bytes) -> None:
    _refused_or_unchanged(data)


@_FUZZ
@given(data=st.data())
def test_a_mutated_key_list_is_refused_or_says_what_the_root_signed(data: st.DataObject) -> None:
    mutated = bytearray(_VALID.encode())
    for _ in range(data.draw(st.integers(1, 6))):
        mutated[data.draw(st.integers(0, len(mutated) - 1))] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        mutated = mutated[: data.draw(st.integers(0, len(mutated)))]
    _refused_or_unchanged(bytes(mutated))

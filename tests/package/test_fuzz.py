"""Property: any mutation of a valid package is either accepted unchanged or refused with a PackageError."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgefleet.errors import PackageError
from edgefleet.package import open_package
from edgefleet.signing import key_id
from tests.factories import make_package
from tests.package.tarcraft import Member, read_members, write_members

pytestmark = pytest.mark.unit

_SIGNER = Ed25519PrivateKey.generate()
_TRUSTED = {key_id(_SIGNER.public_key()): _SIGNER.public_key()}

_names = st.one_of(
    st.sampled_from(["model.onnx", "manifest.json", "signature.json", "../x", "/abs", "a/../../x", ".x", "x/./y", ""]),
    st.text(alphabet="ab./\\-_:\x00é", min_size=1, max_size=12),
)
_types = st.sampled_from(
    [tarfile.REGTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.DIRTYPE, tarfile.FIFOTYPE, tarfile.CHRTYPE]
)


@st.composite
def member_mutations(draw: st.DrawFn, members: list[Member]) -> list[Member]:
    out = list(members)
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["add", "rename", "drop", "reorder", "duplicate", "rewrite"]))
        if op == "add":
            kind = draw(_types)
            out.insert(
                draw(st.integers(0, len(out))),
                Member(draw(_names), draw(st.binary(max_size=64)), kind, linkname=draw(_names)),
            )
        elif op == "rename" and out:
            i = draw(st.integers(0, len(out) - 1))
            out[i] = out[i].renamed(draw(_names))
        elif op == "drop" and out:
            out.pop(draw(st.integers(0, len(out) - 1)))
        elif op == "reorder":
            out = draw(st.permutations(out))
        elif op == "duplicate" and out:
            out.append(out[draw(st.integers(0, len(out) - 1))])
        elif op == "rewrite" and out:
            i = draw(st.integers(0, len(out) - 1))
            out[i] = Member(out[i].name, draw(st.binary(max_size=128)))
    return out


@pytest.fixture(scope="module")
def valid(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, dict[str, bytes]]:
    path = make_package(tmp_path_factory.mktemp("valid"), _SIGNER)
    return path.read_bytes(), {m.name: m.data for m in read_members(path)}


def _check_outcome(candidate: Path, work: Path, original: dict[str, bytes]) -> None:
    target = work / "target"
    before = {p for p in work.parent.rglob("*")}
    try:
        opened = open_package(candidate, target, _TRUSTED)
    except PackageError:
        assert not target.exists(), "a refused package leaves no target behind"
    else:
        extracted = {str(p.relative_to(target)): p.read_bytes() for p in target.rglob("*") if p.is_file()}
        assert extracted == original, "an accepted package is identical to the one that was signed"
        assert opened.manifest.name == "pump-vibration"
    after = {p for p in work.parent.rglob("*")}
    written = {p for p in after - before if target not in p.parents and p != target}
    assert not written, f"files written outside the target: {written}"


_SETTINGS = settings(
    max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


@_SETTINGS
@given(data=st.data())
def test_flipped_or_truncated_bytes_never_escape_the_error_hierarchy(
    valid: tuple[bytes, dict[str, bytes]], tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    raw, original = valid
    mutated = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, len(mutated) - 1))
        mutated[i] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        mutated = mutated[: data.draw(st.integers(0, len(mutated)))]
    work = tmp_path_factory.mktemp("flip") / "work"
    work.mkdir()
    candidate = work / "p.efpkg"
    candidate.write_bytes(bytes(mutated))
    _check_outcome(candidate, work, original)


@_SETTINGS
@given(data=st.data())
def test_added_renamed_dropped_or_reordered_members_are_refused_or_harmless(
    valid: tuple[bytes, dict[str, bytes]], tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    _, original = valid
    members = [Member(name, content) for name, content in original.items()]
    mutated = data.draw(member_mutations(members))
    work = tmp_path_factory.mktemp("members") / "work"
    work.mkdir()
    try:
        candidate = write_members(work / "p.efpkg", mutated)
    except (ValueError, UnicodeError, tarfile.TarError):
        return  # tarfile itself cannot write this archive, so no reader will ever meet it
    _check_outcome(candidate, work, original)

"""The package reader refuses every unsafe or altered archive with a specific PackageError."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgefleet.errors import (
    DowngradeError,
    IntegrityError,
    ManifestError,
    SignatureError,
    UnsafeArchiveError,
    UntrustedKeyError,
)
from edgefleet.package import Limits, inspect_package, open_package, verify_package
from edgefleet.signing import key_id
from tests.factories import make_package
from tests.package.tarcraft import Member, read_members, write_members

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def signer() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def trusted(signer: Ed25519PrivateKey) -> dict:
    return {key_id(signer.public_key()): signer.public_key()}


@pytest.fixture
def package(tmp_path: Path, signer: Ed25519PrivateKey) -> Path:
    return make_package(tmp_path, signer)


def _files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def test_opens_a_valid_package_and_extracts_exactly_its_files(package: Path, tmp_path: Path, trusted: dict) -> None:
    opened = open_package(package, tmp_path / "out", trusted)
    assert opened.manifest.name == "pump-vibration"
    assert _files_under(tmp_path / "out") == {
        "manifest.json",
        "signature.json",
        "model.onnx",
        "extra",
        "extra/model-int8.onnx",
    }
    assert opened.artifact_path(opened.manifest.artifact("model.onnx")).read_bytes() == b"not really onnx " * 64


def test_build_is_deterministic(tmp_path: Path, signer: Ed25519PrivateKey) -> None:
    # Ed25519 signatures are deterministic, so the same inputs give the same bytes
    first = make_package(tmp_path / "a", signer).read_bytes()
    second = make_package(tmp_path / "b", signer).read_bytes()
    assert first == second


def _rebuilt(package: Path, tmp_path: Path, change) -> Path:
    members = change(read_members(package))
    return write_members(tmp_path / "bad.efpkg", members)


@pytest.mark.parametrize(
    ("change", "error", "words"),
    [
        (lambda ms: [*ms, Member("/etc/evil", b"x")], UnsafeArchiveError, "unsafe name"),
        (lambda ms: [*ms, Member("../evil", b"x")], UnsafeArchiveError, "unsafe name"),
        (lambda ms: [*ms, Member("extra/../../evil", b"x")], UnsafeArchiveError, "unsafe name"),
        (lambda ms: [*ms, Member(".hidden", b"x")], UnsafeArchiveError, "unsafe name"),
        (
            lambda ms: [*ms, Member("link", type=tarfile.SYMTYPE, linkname="/etc/passwd")],
            UnsafeArchiveError,
            "symbolic link",
        ),
        (
            lambda ms: [*ms, Member("hard", type=tarfile.LNKTYPE, linkname="model.onnx")],
            UnsafeArchiveError,
            "hard link",
        ),
        (lambda ms: [*ms, Member("dev", type=tarfile.CHRTYPE)], UnsafeArchiveError, "device file"),
        (lambda ms: [*ms, Member("fifo", type=tarfile.FIFOTYPE)], UnsafeArchiveError, "FIFO"),
        (lambda ms: [*ms, Member("somedir", type=tarfile.DIRTYPE)], UnsafeArchiveError, "directory"),
        (lambda ms: [*ms, ms[2]], UnsafeArchiveError, "appears twice"),
        (lambda ms: [*ms, Member("unknown.bin", b"x")], ManifestError, "unknown files ['unknown.bin']"),
        (lambda ms: [m for m in ms if m.name != "model.onnx"], ManifestError, "missing files ['model.onnx']"),
        (lambda ms: [m for m in ms if m.name != "signature.json"], SignatureError, "no signature.json"),
        (lambda ms: [m for m in ms if m.name != "manifest.json"], ManifestError, "no manifest.json"),
        (
            lambda ms: [Member(m.name, m.data[:-1] + b"?") if m.name == "model.onnx" else m for m in ms],
            IntegrityError,
            "sha256",
        ),
        (
            lambda ms: [Member(m.name, m.data + b"!") if m.name == "model.onnx" else m for m in ms],
            IntegrityError,
            "bytes, the manifest says",
        ),
        (
            lambda ms: [
                Member(m.name, m.data.replace(b"pump", b"pomp")) if m.name == "manifest.json" else m for m in ms
            ],
            SignatureError,
            "does not match",
        ),
        (
            lambda ms: [Member(m.name, b"{}") if m.name == "signature.json" else m for m in ms],
            SignatureError,
            "malformed",
        ),
    ],
)
def test_refuses_an_altered_archive(package: Path, tmp_path: Path, trusted: dict, change, error, words) -> None:
    bad = _rebuilt(package, tmp_path, change)
    target = tmp_path / "out"
    with pytest.raises(error) as caught:
        open_package(bad, target, trusted)
    assert words in str(caught.value)
    assert not target.exists(), "a refused package leaves nothing behind"
    assert not (tmp_path / "evil").exists()
    assert not Path("/etc/evil").exists()


def test_refuses_a_manifest_that_breaks_the_schema_even_when_signed(
    tmp_path: Path, signer: Ed25519PrivateKey, trusted: dict
) -> None:
    from edgefleet.package import MANIFEST_NAME
    from edgefleet.signing import sign

    package = make_package(tmp_path, signer)
    bad_manifest = b'{"schema":"ef.manifest.v1","name":"Bad Name!"}'
    signature = sign(bad_manifest, signer).model_dump_json(by_alias=True).encode()
    members = [
        Member(m.name, bad_manifest if m.name == MANIFEST_NAME else signature if m.name == "signature.json" else m.data)
        for m in read_members(package)
    ]
    with pytest.raises(ManifestError, match="breaks schema"):
        verify_package(write_members(tmp_path / "bad.efpkg", members), trusted)


def test_refuses_an_untrusted_key(package: Path) -> None:
    other = Ed25519PrivateKey.generate().public_key()
    with pytest.raises(UntrustedKeyError, match="not among the trusted keys"):
        verify_package(package, {key_id(other): other})


def test_refuses_a_lower_version_unless_rollback_is_explicit(
    tmp_path: Path, signer: Ed25519PrivateKey, trusted: dict
) -> None:
    package = make_package(tmp_path, signer, version="1.2.0")
    with pytest.raises(DowngradeError, match=r"1\.2\.0 is older than the installed 1\.10\.0"):
        verify_package(package, trusted, installed_version="1.10.0")
    assert verify_package(package, trusted, installed_version="1.10.0", allow_rollback=True).manifest.version == "1.2.0"
    assert verify_package(package, trusted, installed_version="1.2.0-rc.1").manifest.version == "1.2.0"


def test_refuses_members_over_the_size_limits(package: Path, trusted: dict) -> None:
    with pytest.raises(UnsafeArchiveError, match="over the limit"):
        verify_package(package, trusted, limits=Limits(max_member_bytes=1000))
    with pytest.raises(UnsafeArchiveError, match="unpacks to more than"):
        verify_package(package, trusted, limits=Limits(max_total_bytes=3000))
    with pytest.raises(UnsafeArchiveError, match="more than 2 members"):
        verify_package(package, trusted, limits=Limits(max_members=2))


def test_refuses_a_header_that_claims_a_huge_member(package: Path, tmp_path: Path, trusted: dict) -> None:
    # a decompression bomb in a plain tar: a header that promises more than the limit allows
    members = read_members(package)
    bomb = write_members(tmp_path / "bomb.efpkg", [*members, Member("bomb.bin", b"x" * 10)])
    data = bytearray(bomb.read_bytes())
    index = data.find(b"bomb.bin")
    size_field = index + 124
    data[size_field : size_field + 12] = b"77777777777\x00"
    data[index + 148 : index + 156] = b"        "
    checksum = sum(data[index : index + 512])
    data[index + 148 : index + 156] = f"{checksum:06o}\x00 ".encode()
    (tmp_path / "bomb2.efpkg").write_bytes(bytes(data))
    with pytest.raises(UnsafeArchiveError, match="over the limit"):
        verify_package(tmp_path / "bomb2.efpkg", trusted)


def test_refuses_compressed_and_non_tar_files(package: Path, tmp_path: Path, trusted: dict) -> None:
    import gzip

    gz = tmp_path / "p.efpkg"
    gz.write_bytes(gzip.compress(package.read_bytes()))
    with pytest.raises(UnsafeArchiveError, match="not a readable package archive"):
        verify_package(gz, trusted)
    junk = tmp_path / "junk.efpkg"
    junk.write_bytes(os.urandom(3000))
    with pytest.raises(UnsafeArchiveError):
        verify_package(junk, trusted)


def test_refuses_a_non_empty_target_and_leaves_it_alone(package: Path, tmp_path: Path, trusted: dict) -> None:
    from edgefleet.errors import InputError

    target = tmp_path / "out"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="not an empty folder"):
        open_package(package, target, trusted)
    assert _files_under(target) == {"keep.txt"}


def test_inspect_reads_the_manifest_without_keys(package: Path) -> None:
    assert inspect_package(package).version == "1.0.0"

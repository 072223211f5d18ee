"""The model registry over HTTP: signed packages are verified on upload, listed, and downloaded resumably."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import create_engine, func, select

from edgefleet.signing import generate_keys, load_private_key
from fleet_server import ServerHandle
from fleet_server.db.models import Package
from fleet_server.registry import PackageStore
from tests.factories import make_package
from tests.server.conftest import admin_headers

pytestmark = pytest.mark.integration

Key = tuple[Ed25519PrivateKey, Path]


def _upload(server: ServerHandle, package: Path | bytes) -> httpx.Response:
    body = package if isinstance(package, bytes) else package.read_bytes()
    return httpx.post(
        f"{server.base_url}/api/v1/models",
        content=body,
        headers={"Content-Type": "application/octet-stream", **admin_headers(server)},
    )


def _package(tmp_path: Path, key: Key, version: str = "1.0.0", files: dict[str, bytes] | None = None) -> Path:
    # one folder per package: make_package names its files after the version only
    folder = tmp_path / f"pkg-{len(list(tmp_path.glob('pkg-*')))}"
    folder.mkdir()
    return make_package(folder, key[0], version=version, files=files)


def _download(server: ServerHandle, sha256: str, **headers: str) -> httpx.Response:
    return httpx.get(f"{server.base_url}/api/v1/packages/{sha256}", headers=headers | admin_headers(server))


def _rows(server: ServerHandle) -> int:
    engine = create_engine(server.settings.resolved_database_url())
    try:
        with engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(Package)).scalar_one())
    finally:
        engine.dispose()


@pytest.fixture
def uploaded(registry_server: ServerHandle, signing_key: Key, tmp_path: Path) -> tuple[bytes, str]:
    """A package uploaded to the registry: its bytes and sha256."""
    data = _package(tmp_path, signing_key).read_bytes()
    assert _upload(registry_server, data).status_code == 201
    return data, hashlib.sha256(data).hexdigest()


def test_an_upload_is_verified_recorded_listed_and_shows_its_manifest(
    registry_server: ServerHandle, signing_key: Key, tmp_path: Path
) -> None:
    data = _package(tmp_path, signing_key, version="1.2.0").read_bytes()
    response = _upload(registry_server, data)
    assert response.status_code == 201, response.text
    record = response.json()
    sha256 = hashlib.sha256(data).hexdigest()
    assert record["name"] == "pump-vibration"
    assert record["version"] == "1.2.0"
    assert record["sha256"] == sha256
    assert record["size_bytes"] == len(data)
    assert record["download_path"] == f"/api/v1/packages/{sha256}"
    stored = registry_server.settings.data_dir / "packages" / sha256[:2] / f"{sha256}.efpkg"
    assert stored.read_bytes() == data
    assert not list((registry_server.settings.data_dir / "packages" / "incoming").iterdir())

    models = httpx.get(f"{registry_server.base_url}/api/v1/models", headers=admin_headers(registry_server)).json()
    assert [(m["name"], [v["version"] for v in m["versions"]]) for m in models] == [("pump-vibration", ["1.2.0"])]
    detail = httpx.get(
        f"{registry_server.base_url}/api/v1/models/pump-vibration/versions/1.2.0",
        headers=admin_headers(registry_server),
    ).json()
    assert detail["sha256"] == sha256
    assert detail["manifest"]["schema"] == "ef.manifest.v1"
    assert [a["path"] for a in detail["manifest"]["artifacts"]] == ["model.onnx", "extra/model-int8.onnx"]


def test_versions_are_listed_newest_first_by_semver(
    registry_server: ServerHandle, signing_key: Key, tmp_path: Path
) -> None:
    for version in ("1.2.0", "1.10.0", "1.10.0-rc.1", "1.9.0"):
        assert _upload(registry_server, _package(tmp_path, signing_key, version)).status_code == 201
    [model] = httpx.get(f"{registry_server.base_url}/api/v1/models", headers=admin_headers(registry_server)).json()
    assert [v["version"] for v in model["versions"]] == ["1.10.0", "1.10.0-rc.1", "1.9.0", "1.2.0"]


def test_the_same_upload_again_is_200_with_the_same_record_and_one_row(
    registry_server: ServerHandle, uploaded: tuple[bytes, str]
) -> None:
    data, sha256 = uploaded
    again = _upload(registry_server, data)
    assert again.status_code == 200
    assert again.json()["sha256"] == sha256
    assert _rows(registry_server) == 1


def test_the_same_version_with_other_bytes_is_a_409_that_says_to_bump_the_version(
    registry_server: ServerHandle, signing_key: Key, tmp_path: Path, uploaded: tuple[bytes, str]
) -> None:
    other = _package(tmp_path, signing_key, files={"model.onnx": b"another model " * 64})
    response = _upload(registry_server, other)
    assert response.status_code == 409
    assert "pump-vibration@1.0.0 is already in the registry" in response.json()["detail"]
    assert "bump the version" in response.json()["detail"]
    assert _rows(registry_server) == 1


def _tampered(path: Path, old: bytes, new: bytes) -> bytes:
    # same length, so the tar headers still hold: only the signed content differs
    assert len(old) == len(new)
    data = path.read_bytes()
    assert data.count(old) >= 1
    return data.replace(old, new, 1)


def test_a_package_with_a_wrong_signature_is_refused_with_the_reason(
    registry_server: ServerHandle, signing_key: Key, tmp_path: Path
) -> None:
    package = _package(tmp_path, signing_key)
    response = _upload(registry_server, _tampered(package, b"2026-11-24T00:00:00Z", b"2026-11-25T00:00:00Z"))
    assert response.status_code == 422
    assert "does not match the manifest" in response.json()["detail"]
    assert _rows(registry_server) == 0


def test_a_package_signed_by_an_untrusted_key_is_refused_with_the_reason(
    registry_server: ServerHandle, tmp_path: Path
) -> None:
    private_path, public_path = generate_keys(tmp_path / "stranger")
    response = _upload(registry_server, _package(tmp_path, (load_private_key(private_path), public_path)))
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "not among the trusted keys" in detail
    assert "signed with a trusted key" in detail  # the hint travels with the message


def test_a_package_with_a_tampered_artifact_is_refused_with_the_reason(
    registry_server: ServerHandle, signing_key: Key, tmp_path: Path
) -> None:
    package = _package(tmp_path, signing_key)
    response = _upload(registry_server, _tampered(package, b"not really onnx", b"not really ONNX"))
    assert response.status_code == 422
    assert "model.onnx does not match the sha256 in the manifest" in response.json()["detail"]


def test_a_body_that_is_not_a_package_is_refused(registry_server: ServerHandle) -> None:
    response = _upload(registry_server, b"hello, not a tar")
    assert response.status_code == 422
    assert "not a readable package archive" in response.json()["detail"]


def test_an_oversized_body_is_a_413_whether_declared_or_streamed(registry_server: ServerHandle) -> None:
    url = f"{registry_server.base_url}/api/v1/models"
    declared = httpx.post(url, content=b"x" * (100 * 1024), headers=admin_headers(registry_server))
    assert declared.status_code == 413
    assert "EDGEFLEET_SERVER_MAX_PACKAGE_BYTES" in declared.json()["detail"]
    chunked = iter([b"x" * 16 * 1024] * 6)  # no Content-Length
    streamed = httpx.post(url, content=chunked, headers=admin_headers(registry_server))
    assert streamed.status_code == 413
    assert not list((registry_server.settings.data_dir / "packages" / "incoming").iterdir())


def test_a_form_upload_is_a_415_that_says_how_to_send_the_file(registry_server: ServerHandle) -> None:
    response = httpx.post(
        f"{registry_server.base_url}/api/v1/models", files={"file": b"x"}, headers=admin_headers(registry_server)
    )
    assert response.status_code == 415
    assert "application/octet-stream" in response.json()["detail"]


def test_without_trusted_keys_uploads_are_refused_naming_the_setting(
    server: ServerHandle, signing_key: Key, tmp_path: Path
) -> None:
    response = _upload(server, _package(tmp_path, signing_key))
    assert response.status_code == 503
    assert "EDGEFLEET_SERVER_TRUSTED_KEYS" in response.json()["detail"]


def test_the_download_is_the_uploaded_file_with_a_strong_etag(
    registry_server: ServerHandle, uploaded: tuple[bytes, str]
) -> None:
    data, sha256 = uploaded
    response = _download(registry_server, sha256)
    assert response.status_code == 200
    assert hashlib.sha256(response.content).hexdigest() == sha256
    assert response.headers["etag"] == f'"{sha256}"'
    assert response.headers["accept-ranges"] == "bytes"
    assert 'filename="pump-vibration-1.0.0.efpkg"' in response.headers["content-disposition"]
    head = httpx.head(f"{registry_server.base_url}/api/v1/packages/{sha256}", headers=admin_headers(registry_server))
    assert head.status_code == 200
    assert head.headers["content-length"] == str(len(data))
    assert head.headers["etag"] == f'"{sha256}"'


def test_a_range_request_resumes_the_download(registry_server: ServerHandle, uploaded: tuple[bytes, str]) -> None:
    data, sha256 = uploaded
    response = _download(registry_server, sha256, Range="bytes=100-")
    assert response.status_code == 206
    assert response.headers["content-range"] == f"bytes 100-{len(data) - 1}/{len(data)}"
    assert response.content == data[100:]
    same_file = _download(registry_server, sha256, Range="bytes=100-199", **{"If-Range": f'"{sha256}"'})
    assert same_file.status_code == 206
    assert same_file.content == data[100:200]


def test_if_range_with_a_stale_etag_sends_the_whole_file(
    registry_server: ServerHandle, uploaded: tuple[bytes, str]
) -> None:
    data, sha256 = uploaded
    response = _download(registry_server, sha256, Range="bytes=100-", **{"If-Range": f'"{"0" * 64}"'})
    assert response.status_code == 200
    assert response.content == data


def test_if_none_match_with_the_etag_is_a_304(registry_server: ServerHandle, uploaded: tuple[bytes, str]) -> None:
    _data, sha256 = uploaded
    response = _download(registry_server, sha256, **{"If-None-Match": f'"{"0" * 64}", W/"{sha256}"'})
    assert response.status_code == 304
    assert response.headers["etag"] == f'"{sha256}"'
    assert response.content == b""
    assert _download(registry_server, sha256, **{"If-None-Match": f'"{"0" * 64}"'}).status_code == 200


def test_an_unknown_package_is_a_404(registry_server: ServerHandle) -> None:
    assert _download(registry_server, "0" * 64).status_code == 404
    assert _download(registry_server, "not-a-hash").status_code == 422
    missing = httpx.get(
        f"{registry_server.base_url}/api/v1/models/pump-vibration/versions/9.9.9",
        headers=admin_headers(registry_server),
    )
    assert missing.status_code == 404
    assert "pump-vibration@9.9.9" in missing.json()["detail"]


def test_the_store_survives_a_server_restart(registry_server: ServerHandle, uploaded: tuple[bytes, str]) -> None:
    data, sha256 = uploaded
    registry_server.stop()
    restarted = ServerHandle(registry_server.settings)
    restarted.start()
    try:
        response = _download(restarted, sha256)
        assert response.status_code == 200
        assert response.content == data
        [model] = httpx.get(f"{restarted.base_url}/api/v1/models", headers=admin_headers(restarted)).json()
        assert model["versions"][0]["sha256"] == sha256
    finally:
        restarted.stop()


def test_the_routes_are_documented_in_openapi(registry_server: ServerHandle) -> None:
    paths = httpx.get(f"{registry_server.base_url}/openapi.json").json()["paths"]
    assert set(paths["/api/v1/models"]) == {"get", "post"}
    assert "application/octet-stream" in paths["/api/v1/models"]["post"]["requestBody"]["content"]
    assert set(paths["/api/v1/packages/{sha256}"]) == {"get", "head"}
    assert "/api/v1/models/{name}/versions/{version}" in paths


@pytest.mark.unit
def test_the_store_keeps_one_file_per_hash_and_sweeps_only_old_leftovers(tmp_path: Path) -> None:
    store = PackageStore.open(tmp_path / "packages")
    sha256 = hashlib.sha256(b"package").hexdigest()
    for _ in range(2):  # the second commit of the same bytes drops the upload and keeps the stored file
        received = store.reserve()
        received.write_bytes(b"package")
        assert store.commit(received, sha256) == tmp_path / "packages" / sha256[:2] / f"{sha256}.efpkg"
        assert not received.exists()
    assert store.has(sha256)
    old, recent = store.reserve(), store.reserve()
    old.write_bytes(b"half an upload from a crash")
    recent.write_bytes(b"another server's upload in progress")
    os.utime(old, (0, 0))
    PackageStore.open(tmp_path / "packages")
    assert not old.exists()
    assert recent.exists()
    with pytest.raises(ValueError, match="not a lowercase hex sha256"):
        store.path("../../etc/passwd")

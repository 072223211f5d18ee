"""Provisioning tokens enroll devices; tokens and passwords are stored only hashed; the first admin token file."""

from __future__ import annotations

import hashlib
import logging
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, create_engine, select, text, update

from fleet_server import MqttSettings, ServerHandle, ServerSettings
from fleet_server.auth import hash_secret, mqtt_password_matches
from fleet_server.auth.tokens import TokenKind, parse_token
from fleet_server.db import Base, Device, MqttCredential, ProvisioningToken, make_engine, upgrade
from tests.factories import make_package
from tests.server.conftest import admin_headers
from tests.support import free_port

pytestmark = pytest.mark.integration


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _provisioning(client: httpx.Client, **terms: object) -> str:
    response = client.post("/api/v1/provisioning-tokens", json=terms)
    assert response.status_code == 201, response.text
    return str(response.json()["token"])


def _enroll(server: ServerHandle, token: str, device_id: str, profile: str = "rpi4") -> httpx.Response:
    body = {"provisioning_token": token, "device_id": device_id, "profile": profile}
    return httpx.post(f"{server.base_url}/api/v1/devices/enroll", json=body)


def _engine(server: ServerHandle) -> Engine:
    return create_engine(server.settings.resolved_database_url())


def test_a_device_enrolls_and_its_token_downloads_packages_but_lists_no_tokens(
    registry_server: ServerHandle, signing_key: tuple[Ed25519PrivateKey, Path], tmp_path: Path
) -> None:
    with httpx.Client(base_url=registry_server.base_url, headers=admin_headers(registry_server)) as admin:
        operator = admin.post("/api/v1/tokens", json={"name": "ops", "role": "operator"}).json()["token"]
    with httpx.Client(base_url=registry_server.base_url, headers=_bearer(operator)) as ops:
        token = _provisioning(ops, uses=5, tags=["line-3"], profile="rpi4")
        data = make_package(tmp_path, signing_key[0]).read_bytes()
        upload = ops.post("/api/v1/models", content=data, headers={"Content-Type": "application/octet-stream"})
        assert upload.status_code == 201, upload.text
    enrolled = _enroll(registry_server, token, "pump-7")
    assert enrolled.status_code == 201, enrolled.text
    credentials = enrolled.json()
    assert credentials["device_id"] == "pump-7"
    assert credentials["mqtt"]["username"] == "pump-7"
    device = _bearer(credentials["token"])
    me = httpx.get(f"{registry_server.base_url}/api/v1/whoami", headers=device).json()
    assert me == {"token_id": credentials["token_id"], "name": "device pump-7", "role": "device", "device_id": "pump-7"}
    download = httpx.get(f"{registry_server.base_url}{upload.json()['download_path']}", headers=device)
    assert download.status_code == 200
    assert hashlib.sha256(download.content).hexdigest() == upload.json()["sha256"]
    for forbidden in ("/api/v1/tokens", "/api/v1/devices", "/api/v1/models"):
        assert httpx.get(f"{registry_server.base_url}{forbidden}", headers=device).status_code == 403
    engine = _engine(registry_server)
    try:
        with engine.connect() as db:
            row = db.execute(select(Device.tags, Device.profile).where(Device.id == "pump-7")).one()
            mqtt = db.execute(select(MqttCredential.password_hash)).scalar_one()
    finally:
        engine.dispose()
    assert (row.tags, row.profile) == (["line-3"], "rpi4")
    assert mqtt.startswith("$7$101$")  # Mosquitto's own format: a broker password file can be written from it
    assert mqtt_password_matches(credentials["mqtt"]["password"], mqtt)


def test_the_database_holds_hashes_never_the_secrets(server: ServerHandle, admin_client: httpx.Client) -> None:
    viewer = admin_client.post("/api/v1/tokens", json={"name": "dash", "role": "viewer"}).json()["token"]
    provisioning = _provisioning(admin_client)
    enrolled = _enroll(server, provisioning, "cam-1").json()
    secrets = [
        admin_headers(server)["Authorization"].removeprefix("Bearer "),
        viewer,
        provisioning,
        enrolled["token"],
        enrolled["mqtt"]["password"],
    ]
    engine = _engine(server)
    try:
        with engine.connect() as db:
            dump = "\n".join(
                repr(tuple(row)) for table in Base.metadata.sorted_tables for row in db.execute(table.select())
            )
    finally:
        engine.dispose()
    for secret in secrets:
        assert secret not in dump
    for token in secrets[:4]:
        assert token[-43:] not in dump  # nor a token's secret part alone
        assert hash_secret(token) in dump


def test_expired_used_up_and_unknown_provisioning_tokens_are_refused(
    server: ServerHandle, admin_client: httpx.Client
) -> None:
    once = _provisioning(admin_client, uses=1)
    assert _enroll(server, once, "dev-1").status_code == 201
    used_up = _enroll(server, once, "dev-2")
    assert used_up.status_code == 403
    assert "is used up" in used_up.json()["detail"]
    expiring = _provisioning(admin_client, uses=3)
    token_id = expiring.split("_")[1]
    engine = _engine(server)
    try:
        with engine.begin() as db:
            past = datetime.now(UTC) - timedelta(seconds=1)
            db.execute(update(ProvisioningToken).where(ProvisioningToken.id == token_id).values(expires_at=past))
    finally:
        engine.dispose()
    expired = _enroll(server, expiring, "dev-3")
    assert expired.status_code == 403
    assert "expired at" in expired.json()["detail"]
    unknown = _enroll(server, "efp_000000000000_" + "a" * 43, "dev-4")
    assert unknown.status_code == 401
    assert "POST /api/v1/provisioning-tokens" in unknown.json()["detail"]
    camera_only = _provisioning(admin_client, profile="camera")
    assert _enroll(server, camera_only, "dev-5", profile="rpi4").status_code == 403
    assert _enroll(server, once, "Bad/Id").status_code == 422  # DeviceId: never '/', '+' or '#'


def test_an_enrolled_device_enrolls_again_only_after_its_token_is_revoked(
    server: ServerHandle, admin_client: httpx.Client
) -> None:
    token = _provisioning(admin_client, uses=3)
    first = _enroll(server, token, "pump-9").json()
    again = _enroll(server, token, "pump-9")
    assert again.status_code == 409
    assert f"DELETE /api/v1/tokens/{first['token_id']}" in again.json()["detail"]
    assert admin_client.delete(f"/api/v1/tokens/{first['token_id']}").status_code == 204
    revoked = httpx.get(f"{server.base_url}/api/v1/whoami", headers=_bearer(first["token"]))
    assert revoked.status_code == 401
    assert "was revoked" in revoked.json()["detail"]
    second = _enroll(server, token, "pump-9")
    assert second.status_code == 201
    assert httpx.get(f"{server.base_url}/api/v1/whoami", headers=_bearer(second.json()["token"])).status_code == 200
    listed = {t["id"]: t for t in admin_client.get("/api/v1/tokens").json()}
    assert listed[first["token_id"]]["revoked_at"] is not None
    assert "token" not in listed[first["token_id"]]


def test_revoked_tokens_are_refused_and_the_last_admin_token_stays(
    server: ServerHandle, admin_client: httpx.Client
) -> None:
    viewer = admin_client.post("/api/v1/tokens", json={"name": "dash", "role": "viewer"}).json()
    assert httpx.get(f"{server.base_url}/api/v1/devices", headers=_bearer(viewer["token"])).status_code == 200
    assert admin_client.delete(f"/api/v1/tokens/{viewer['id']}").status_code == 204
    assert httpx.get(f"{server.base_url}/api/v1/devices", headers=_bearer(viewer["token"])).status_code == 401
    me = admin_client.get("/api/v1/whoami").json()
    last = admin_client.delete(f"/api/v1/tokens/{me['token_id']}")
    assert last.status_code == 409
    assert "create another admin token first" in last.json()["detail"]
    assert admin_client.delete("/api/v1/tokens/000000000000").status_code == 404
    device_role = admin_client.post("/api/v1/tokens", json={"name": "x", "role": "device"})
    assert device_role.status_code == 422  # device tokens come from enrollment only


def test_the_admin_token_file_is_private_and_only_its_path_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    settings = ServerSettings(data_dir=tmp_path / "server", http_port=free_port(), mqtt=MqttSettings(port=free_port()))
    server = ServerHandle(settings)
    server.start()
    try:
        path = settings.resolved_admin_token_file()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        token = path.read_text().strip()
        assert parse_token(token, TokenKind.API) is not None
        written = [r for r in caplog.records if r.getMessage() == "auth.admin_token_written"]
        assert [getattr(r, "path", None) for r in written] == [str(path)]
        assert token not in caplog.text
        assert token[-43:] not in " ".join(str(vars(r)) for r in caplog.records)
    finally:
        server.stop()
    restarted = ServerHandle(settings.model_copy(update={"http_port": free_port()}))
    restarted.start()
    try:
        assert path.read_text().strip() == token  # a live admin token exists: nothing rewritten
        assert httpx.get(f"{restarted.base_url}/api/v1/whoami", headers=_bearer(token)).json()["role"] == "admin"
    finally:
        restarted.stop()


def test_the_migrations_build_exactly_the_tables_the_models_declare(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'fleet.db'}")
    try:
        upgrade(engine)
        with engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
            assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one() >= "0004"
    finally:
        engine.dispose()


@pytest.mark.unit
def test_mqtt_password_hashes_are_mosquittos() -> None:
    # written by mosquitto_passwd 2 for the password "secretpw"
    stored = "$7$101$R5EjoJk4+b2W+Hpj$fikzn4HlguGB5QrqRttaL59HgmvW07/JvBcw1A7+dLVE1M7ggNfhkVknqQF5j+OOFsjdG+KYTsBILYtfJ8hzKw=="
    assert mqtt_password_matches("secretpw", stored)
    assert not mqtt_password_matches("secretpx", stored)
    assert not mqtt_password_matches("secretpw", "plain")


@pytest.mark.unit
def test_a_token_of_one_kind_never_parses_as_the_other() -> None:
    assert parse_token("efp_0123456789ab_" + "a" * 43, TokenKind.API) is None
    assert parse_token("eft_0123456789ab_" + "a" * 43, TokenKind.API) is not None
    assert parse_token("eft_0123456789ab_" + "a" * 42, TokenKind.API) is None

"""The agent enrolls itself on its first start with a provisioning token, keeps what it got, and uses it."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx
import pytest

from edge_agent import AgentSettings
from edge_agent.enroll import CREDENTIALS_FILE, EnrollmentError, with_credentials
from fleet_server import ServerHandle

pytestmark = pytest.mark.integration


def _settings(server: ServerHandle, data_dir: Path, token: str, device_id: str = "edge-7") -> AgentSettings:
    return AgentSettings.model_validate(
        {
            "device_id": device_id,
            "profile": "rpi4b",
            "data_dir": data_dir,
            "enrollment": {"server_url": server.base_url, "provisioning_token": token},
        }
    )


def test_first_start_enrolls_keeps_the_credentials_private_and_reuses_them(
    server: ServerHandle, admin_client: httpx.Client, tmp_path: Path
) -> None:
    provisioning = admin_client.post("/api/v1/provisioning-tokens", json={"uses": 1, "tags": ["line-2"]})
    assert provisioning.status_code == 201, provisioning.text
    settings = _settings(server, tmp_path / "agent", provisioning.json()["token"])

    enrolled = with_credentials(settings)
    assert enrolled.updates.auth_token is not None
    assert enrolled.broker.username is not None
    assert enrolled.broker.password is not None
    credentials = tmp_path / "agent" / CREDENTIALS_FILE
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    # the device's own token speaks for it, and it carries the provisioning token's tags
    me = httpx.get(
        f"{server.base_url}/api/v1/devices/edge-7",
        headers={"Authorization": f"Bearer {enrolled.updates.auth_token.get_secret_value()}"},
    )
    assert me.status_code == 200, me.text
    assert me.json()["tags"] == ["line-2"]
    # a restart reads the file: the provisioning token is used up, so asking the server again would fail
    again = with_credentials(settings)
    assert again.updates.auth_token == enrolled.updates.auth_token
    assert again.broker.password == enrolled.broker.password


def test_a_bad_token_or_another_devices_credentials_are_refused_with_what_to_do(
    server: ServerHandle, admin_client: httpx.Client, tmp_path: Path
) -> None:
    with pytest.raises(EnrollmentError) as refused:
        with_credentials(_settings(server, tmp_path / "a", "ef_prov_unknown.secret"))
    assert "HTTP 401" in refused.value.message
    assert "new one" in refused.value.hint

    token = admin_client.post("/api/v1/provisioning-tokens", json={"uses": 1}).json()["token"]
    with_credentials(_settings(server, tmp_path / "b", token, device_id="edge-8"))
    with pytest.raises(EnrollmentError) as mixed:
        with_credentials(_settings(server, tmp_path / "b", token, device_id="edge-9"))
    assert "'edge-8'" in mixed.value.message
    assert "own data_dir" in mixed.value.hint

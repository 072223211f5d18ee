"""First start: a device trades its provisioning token for credentials of its own, and keeps them on its disk.

The fleet server's ``POST /api/v1/devices/enroll`` answers once with the device's API token (package downloads,
sample uploads) and its MQTT login; they are kept in ``credentials.json`` (mode 0600) in the data folder, so a
restart uses them again without the provisioning token. Plain ``urllib``: the agent carries no HTTP library.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Final

from pydantic import BaseModel, SecretStr, ValidationError

from edge_agent.durable import write_atomic
from edge_agent.settings import AgentSettings
from edge_agent.trust import key_ring
from edgefleet.errors import AgentError, KeyListError
from edgefleet.keylist import SignedKeyListV1

__all__ = ["CREDENTIALS_FILE", "Credentials", "EnrollmentError", "with_credentials"]

log = logging.getLogger(__name__)

CREDENTIALS_FILE: Final = "credentials.json"
_ATTEMPTS: Final = 5


class EnrollmentError(AgentError):
    """The server refused the enrollment, or could not be reached."""


class Credentials(BaseModel):
    """What enrollment gave this device; secrets are never logged or shown."""

    device_id: str
    token: SecretStr
    mqtt_username: str
    mqtt_password: SecretStr


def with_credentials(settings: AgentSettings, timeout_s: float = 10.0) -> AgentSettings:
    """``settings`` with the device's own credentials for downloads and the broker, enrolling first when it has
    none yet; settings without ``enrollment`` are returned as they are. Raises EnrollmentError."""
    enrollment = settings.enrollment
    if enrollment is None:
        return settings
    path = settings.data_dir / CREDENTIALS_FILE
    credentials = _stored(path, settings.device_id)
    if credentials is None:
        credentials = _enroll(settings, timeout_s)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, _dump(credentials).encode(), mode=0o600)
    broker = settings.broker
    if broker.username is None:
        broker = broker.model_copy(
            update={"username": credentials.mqtt_username, "password": credentials.mqtt_password}
        )
    updates = settings.updates
    if updates.auth_token is None:
        updates = updates.model_copy(update={"auth_token": credentials.token})
    return settings.model_copy(update={"broker": broker, "updates": updates})


def _stored(path: Path, device_id: str) -> Credentials | None:
    try:
        credentials = Credentials.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValidationError) as err:
        raise EnrollmentError(
            f"the device's credentials in {path} cannot be read ({type(err).__name__})",
            hint="restore the file from a backup, or have an operator revoke the device's token, delete the file "
            "and enroll again with a new provisioning token",
        ) from err
    if credentials.device_id != device_id:
        raise EnrollmentError(
            f"{path} holds the credentials of {credentials.device_id!r}, not of this device ({device_id!r})",
            hint="give each device its own data_dir",
        )
    return credentials


def _dump(credentials: Credentials) -> str:
    return json.dumps(
        {
            "device_id": credentials.device_id,
            "token": credentials.token.get_secret_value(),
            "mqtt_username": credentials.mqtt_username,
            "mqtt_password": credentials.mqtt_password.get_secret_value(),
        }
    )


def _enroll(settings: AgentSettings, timeout_s: float) -> Credentials:
    enrollment = settings.enrollment
    assert enrollment is not None  # with_credentials checked
    body = json.dumps(
        {
            "provisioning_token": enrollment.provisioning_token.get_secret_value(),
            "device_id": settings.device_id,
            "profile": settings.profile,
        }
    ).encode()
    # http or https only: EnrollmentSettings.server_url is validated to start with one of them
    url = f"{enrollment.server_url.rstrip('/')}/api/v1/devices/enroll"
    for attempt in range(1, _ATTEMPTS + 1):
        headers = {"Content-Type": "application/json"}
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
                answer = json.loads(response.read())
            credentials = Credentials(
                device_id=answer["device_id"],
                token=answer["token"],
                mqtt_username=answer["mqtt"]["username"],
                mqtt_password=answer["mqtt"]["password"],
            )
        except urllib.error.HTTPError as err:
            err.close()  # it holds the response's socket
            if err.code == 429 and attempt < _ATTEMPTS:
                # the server limits enrollments per address: a fleet starting together waits its turn
                time.sleep(min(float(err.headers.get("Retry-After") or 1), 30.0))
                continue
            raise _refused(err, settings.device_id) from err
        except (urllib.error.URLError, OSError, ValueError, KeyError) as err:
            if attempt < _ATTEMPTS:
                time.sleep(attempt)
                continue
            raise EnrollmentError(
                f"cannot enroll at {url}: {err}",
                hint="check enrollment.server_url and that the fleet server is running and reachable",
            ) from err
        # outside the try: the token is spent now, so nothing here may lead to enrolling again
        _keep_key_list(settings, answer.get("key_list"))
        return credentials
    raise AssertionError("unreachable: the last attempt returns or raises")


def _keep_key_list(settings: AgentSettings, key_list: object) -> None:
    """Adopt the signing-key list the server gave at enrollment, when the device has a root key to check it with;
    one that does not verify is logged and left (the server sends its list again when the device connects)."""
    if key_list is None or not settings.root_keys:
        return
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        key_ring(settings).offer(SignedKeyListV1.model_validate(key_list))
    except (KeyListError, ValidationError, OSError) as err:
        log.warning("enroll.key_list_refused", extra={"device": settings.device_id, "error": str(err)})


def _refused(err: urllib.error.HTTPError, device_id: str) -> EnrollmentError:
    hints = {
        401: "the provisioning token is unknown, used up or expired: ask an operator for a new one",
        403: "the provisioning token is for another device profile: check the agent's `profile` setting",
        409: f"{device_id!r} is enrolled already and this device has lost its credentials: have an operator "
        "revoke its token, then enroll again",
        429: "too many enrollments from this address: try again in a minute",
    }
    return EnrollmentError(
        f"the fleet server refused to enroll {device_id!r} (HTTP {err.code})",
        hint=hints.get(err.code, "see the fleet server's log"),
    )

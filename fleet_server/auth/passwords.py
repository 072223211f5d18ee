"""Per-device MQTT passwords, stored in Mosquitto's own hash format so the broker can check them.

Mosquitto 2's password file holds ``$7$<iterations>$<salt base64>$<PBKDF2-HMAC-SHA512 base64>`` (what
``mosquitto_passwd`` writes). Storing exactly that lets a password file (or a dynamic-security or auth-plugin
export) be written from the database without the server ever keeping a password in clear. The password is
random (192 bits), so the few iterations Mosquitto uses by default cost an attacker nothing they could use.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Final

__all__ = ["hash_mqtt_password", "mqtt_password_matches", "new_mqtt_password"]

_ITERATIONS: Final = 101  # mosquitto_passwd's default (PW_DEFAULT_ITERATIONS)
_SALT_BYTES: Final = 12


def new_mqtt_password() -> str:
    """A random MQTT password (32 URL-safe characters)."""
    return secrets.token_urlsafe(24)


def hash_mqtt_password(password: str) -> str:
    """``password`` as a Mosquitto ``$7$`` hash, with a fresh salt."""
    salt = secrets.token_bytes(_SALT_BYTES)
    return _format(salt, _ITERATIONS, hashlib.pbkdf2_hmac("sha512", password.encode(), salt, _ITERATIONS))


def mqtt_password_matches(password: str, stored_hash: str) -> bool:
    """True when ``password`` matches a Mosquitto ``$7$`` hash; False for any other format."""
    parts = stored_hash.split("$")
    if len(parts) != 5 or parts[1] != "7" or not parts[2].isdigit():
        return False
    salt, iterations = base64.b64decode(parts[3]), int(parts[2])
    expected = _format(salt, iterations, hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations))
    return hmac.compare_digest(expected, stored_hash)


def _format(salt: bytes, iterations: int, digest: bytes) -> str:
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"

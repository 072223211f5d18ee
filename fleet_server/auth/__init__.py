"""Who may call the API: roles, hashed tokens and MQTT passwords, enrollment, and the first admin token.

FastAPI-free, so the routes' dependencies (``fleet_server.api.deps``) and any other entry point share it.
"""

from __future__ import annotations

from fleet_server.auth.accounts import (
    Caller,
    IssuedToken,
    NewToken,
    authenticate,
    create_token,
    list_tokens,
    revoke_token,
)
from fleet_server.auth.bootstrap import ensure_admin_token, read_token_file
from fleet_server.auth.enrollment import (
    Enrolled,
    IssuedProvisioningToken,
    ProvisioningTerms,
    create_provisioning_token,
    enroll,
)
from fleet_server.auth.errors import (
    AlreadyEnrolled,
    AuthError,
    LastAdmin,
    NotAuthenticated,
    ProvisioningRefused,
    UnknownToken,
)
from fleet_server.auth.listeners import CredentialsListener
from fleet_server.auth.passwords import mqtt_password_matches
from fleet_server.auth.roles import GRANTS, Role, grants
from fleet_server.auth.tokens import hash_secret

__all__ = [
    "GRANTS",
    "AlreadyEnrolled",
    "AuthError",
    "Caller",
    "CredentialsListener",
    "Enrolled",
    "IssuedProvisioningToken",
    "IssuedToken",
    "LastAdmin",
    "NewToken",
    "NotAuthenticated",
    "ProvisioningRefused",
    "ProvisioningTerms",
    "Role",
    "UnknownToken",
    "authenticate",
    "create_provisioning_token",
    "create_token",
    "enroll",
    "ensure_admin_token",
    "grants",
    "hash_secret",
    "list_tokens",
    "mqtt_password_matches",
    "read_token_file",
    "revoke_token",
]

"""Production broker mode: Mosquitto's per-device logins, ACL and TLS, written and reloaded by the server."""

from __future__ import annotations

from fleet_server.broker_auth.accounts import MosquittoAccounts
from fleet_server.broker_auth.mosquitto_files import (
    COMMANDS_USER,
    INGEST_USER,
    ListenerPlan,
    Login,
    acl_text,
    config_text,
    password_file_text,
)
from fleet_server.broker_auth.pki import BrokerTls, ensure_broker_tls
from fleet_server.broker_auth.server_logins import ServerLogins, load_or_create_server_logins

__all__ = [
    "COMMANDS_USER",
    "INGEST_USER",
    "BrokerTls",
    "ListenerPlan",
    "Login",
    "MosquittoAccounts",
    "ServerLogins",
    "acl_text",
    "config_text",
    "ensure_broker_tls",
    "load_or_create_server_logins",
    "password_file_text",
]

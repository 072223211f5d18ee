"""What Mosquitto reads in production broker mode: the password file, the ACL, and a config include.

The ACL gives each device exactly its own topics through ``%u`` (a device's username is its id, and device ids
never hold ``/``, ``+`` or ``#``, so a username cannot widen a pattern: Mosquitto's CVE-2017-7650), and the
server's two logins only what their client does. Usernames of the server's logins hold a ``.``, which no
device id may, so enrolling cannot take them over.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from edgefleet.topics import PREFIX, TopicKind
from fleet_server.broker_auth.pki import BrokerTls

__all__ = ["COMMANDS_USER", "INGEST_USER", "ListenerPlan", "Login", "acl_text", "config_text", "password_file_text"]

INGEST_USER = "edgefleet.ingest"
COMMANDS_USER = "edgefleet.commands"
_DEVICE_WRITES = (TopicKind.STATUS, TopicKind.TELEMETRY, TopicKind.EVENTS)


@dataclass(frozen=True, slots=True)
class Login:
    """One line of the password file: a username and its Mosquitto ``$7$`` hash."""

    username: str
    password_hash: str


@dataclass(frozen=True, slots=True)
class ListenerPlan:
    """Where Mosquitto listens: plain on loopback for the server's own clients, TLS for devices."""

    local_port: int
    tls_port: int
    tls_bind: str


def password_file_text(logins: Iterable[Login]) -> str:
    """The password file: one ``username:hash`` line per login, sorted, so equal contents give equal files."""
    return "".join(
        f"{login.username}:{login.password_hash}\n" for login in sorted(logins, key=lambda entry: entry.username)
    )


def acl_text() -> str:
    """The ACL: devices their own topics, ingest reads every device's reports, the publisher writes commands."""
    lines = ["# written by the edgefleet server: edits are overwritten", ""]
    lines += [f"pattern write {PREFIX}/%u/{kind}" for kind in _DEVICE_WRITES]
    lines += [f"pattern read {PREFIX}/%u/{TopicKind.COMMANDS}", ""]
    lines += [f"user {INGEST_USER}"] + [f"topic read {PREFIX}/+/{kind}" for kind in _DEVICE_WRITES] + [""]
    lines += [f"user {COMMANDS_USER}", f"topic write {PREFIX}/+/{TopicKind.COMMANDS}", ""]
    return "\n".join(lines)


def config_text(folder: Path, tls: BrokerTls, listeners: ListenerPlan) -> str:
    """A Mosquitto 2 config include (``include_dir``, or ``-c`` with a main config) for production broker mode."""
    return "\n".join(
        [
            "# written by the edgefleet server (production broker mode)",
            "per_listener_settings false",
            "allow_anonymous false",
            f"password_file {folder / 'passwd'}",
            f"acl_file {folder / 'acl'}",
            "# the server's ingest acknowledges a report once it is committed: no cap on reports in flight to it,",
            "# and room to queue a fleet's reports while the server restarts",
            "max_inflight_messages 0",
            "max_queued_messages 100000",
            "",
            "# the server's own clients, on this host only",
            f"listener {listeners.local_port} 127.0.0.1",
            "",
            "# devices: TLS with the certificate of the server's CA",
            f"listener {listeners.tls_port} {listeners.tls_bind}",
            f"cafile {tls.ca_cert}",
            f"certfile {tls.cert}",
            f"keyfile {tls.key}",
            "tls_version tlsv1.2",
            "",
        ]
    )

"""API tokens: issue them, authenticate a bearer with one, list and revoke them."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from fleet_server.auth._clock import as_utc
from fleet_server.auth.errors import LastAdmin, NotAuthenticated, UnknownToken
from fleet_server.auth.listeners import CredentialsListener
from fleet_server.auth.roles import Role
from fleet_server.auth.tokens import TokenKind, hash_secret, new_token, parse_token, secret_matches
from fleet_server.db.auth_models import ApiToken, MqttCredential

__all__ = [
    "Caller",
    "IssuedToken",
    "NewToken",
    "add_token",
    "authenticate",
    "create_token",
    "is_live",
    "list_tokens",
    "revoke_token",
]

log = logging.getLogger(__name__)

# recording every request's use would make every read a database write; a minute's precision is enough to
# tell a token in use from an abandoned one
_TOUCH_EVERY: Final = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent a request: the token's public id, its role and name, and its device when it is a device's."""

    token_id: str
    role: Role
    name: str
    device_id: str | None


@dataclass(frozen=True, slots=True)
class NewToken:
    """What a new API token is for; ``expires_at`` None: until revoked."""

    role: Role
    name: str
    created_by: str
    expires_at: datetime | None = None
    device_id: str | None = None


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A token just created: its record, and the secret, which exists nowhere else."""

    record: ApiToken
    token: str


def add_token(session: Session, new: NewToken, now: datetime) -> IssuedToken:
    """Add a token to ``session`` without committing (the caller's transaction decides)."""
    token = new_token(TokenKind.API)
    record = ApiToken(
        id=token.id,
        secret_hash=hash_secret(token.token),
        role=new.role.value,
        name=new.name,
        device_id=new.device_id,
        created_by=new.created_by,
        created_at=now,
        expires_at=new.expires_at,
    )
    session.add(record)
    return IssuedToken(record, token.token)


def create_token(session: Session, new: NewToken, now: datetime) -> IssuedToken:
    """Create and commit an API token."""
    issued = add_token(session, new, now)
    session.commit()
    log.info("auth.token_created", extra={"token_id": issued.record.id, "role": new.role.value})
    return issued


def is_live(record: ApiToken, now: datetime) -> bool:
    """True when the token is neither revoked nor expired."""
    return record.revoked_at is None and (record.expires_at is None or as_utc(record.expires_at) > now)


def authenticate(session: Session, bearer: str, now: datetime) -> Caller:
    """The caller a bearer token stands for; raises NotAuthenticated saying why it is refused."""
    parsed = parse_token(bearer, TokenKind.API)
    if parsed is None:
        raise NotAuthenticated(
            "the bearer token is not an edgefleet API token",
            hint="send Authorization: Bearer eft_<id>_<secret>; provisioning tokens (efp_...) only enroll devices",
        )
    record = session.get(ApiToken, parsed.id)
    # a wrong secret for a known id is answered as an unknown token: the answer tells a guesser nothing
    if record is None or not secret_matches(parsed.token, record.secret_hash):
        raise NotAuthenticated(
            f"API token {parsed.id} is not known to this server",
            hint="check the token you copied; an admin creates tokens with POST /api/v1/tokens",
        )
    if record.revoked_at is not None:
        raise NotAuthenticated(
            f"API token {record.id} ({record.name}) was revoked at {as_utc(record.revoked_at).isoformat()}",
            hint="ask an admin for a new token (a device enrolls again)",
        )
    if record.expires_at is not None and as_utc(record.expires_at) <= now:
        raise NotAuthenticated(
            f"API token {record.id} ({record.name}) expired at {as_utc(record.expires_at).isoformat()}",
            hint="ask an admin for a new token",
        )
    if record.last_used_at is None or now - as_utc(record.last_used_at) >= _TOUCH_EVERY:
        record.last_used_at = now
        session.commit()
    return Caller(token_id=record.id, role=Role(record.role), name=record.name, device_id=record.device_id)


def list_tokens(session: Session) -> Sequence[ApiToken]:
    """Every API token, revoked ones included, oldest first."""
    return session.scalars(select(ApiToken).order_by(ApiToken.created_at, ApiToken.id)).all()


def revoke_token(
    session: Session, token_id: str, now: datetime, listener: CredentialsListener | None = None
) -> ApiToken:
    """Revoke a token (again is a no-op) and, for a device's, its MQTT login too.

    Raises UnknownToken for an unknown id, and LastAdmin rather than leave the server without an admin.
    ``listener`` hears of a device's MQTT login removed, once that is committed (the broker cuts the device off).
    """
    record = session.get(ApiToken, token_id)
    if record is None:
        raise UnknownToken(f"no API token has the id {token_id!r}", hint="GET /api/v1/tokens lists them")
    if record.revoked_at is not None:
        return record
    if record.role == Role.ADMIN and is_live(record, now) and _live_admins(session, now) <= 1:
        raise LastAdmin(
            f"API token {record.id} ({record.name}) is the last live admin token: revoking it would lock every "
            "admin out",
            hint="create another admin token first (POST /api/v1/tokens with role admin), then revoke this one",
        )
    record.revoked_at = now
    if record.device_id is not None:
        # the device is cut off the broker as well as the API
        session.execute(delete(MqttCredential).where(MqttCredential.device_id == record.device_id))
    session.commit()
    log.info("auth.token_revoked", extra={"token_id": record.id, "role": record.role})
    if record.device_id is not None and listener is not None:
        listener.credentials_changed(session)
    return record


def _live_admins(session: Session, now: datetime) -> int:
    admins = session.scalars(select(ApiToken).where(ApiToken.role == Role.ADMIN.value, ApiToken.revoked_at.is_(None)))
    return sum(1 for record in admins if is_live(record, now))

"""Provisioning tokens, and enrolling a device with one: its device row, API token and MQTT login."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fleet_server.auth._clock import as_utc
from fleet_server.auth.accounts import IssuedToken, NewToken, add_token, is_live
from fleet_server.auth.errors import AlreadyEnrolled, NotAuthenticated, ProvisioningRefused
from fleet_server.auth.listeners import CredentialsListener
from fleet_server.auth.passwords import hash_mqtt_password, new_mqtt_password
from fleet_server.auth.roles import Role
from fleet_server.auth.tokens import TokenKind, hash_secret, new_token, parse_token, secret_matches
from fleet_server.db.auth_models import ApiToken, MqttCredential, ProvisioningToken
from fleet_server.db.models import Device

__all__ = [
    "Enrolled",
    "IssuedProvisioningToken",
    "ProvisioningTerms",
    "create_provisioning_token",
    "enroll",
]

log = logging.getLogger(__name__)

_ASK_OPERATOR = "ask an operator for a provisioning token (POST /api/v1/provisioning-tokens)"


@dataclass(frozen=True, slots=True)
class ProvisioningTerms:
    """What a provisioning token allows: how many enrollments until when, and what enrolled devices get."""

    created_by: str
    expires_at: datetime
    uses: int
    tags: tuple[str, ...] = ()
    profile: str | None = None  # set: only devices of this profile may enroll with it


@dataclass(frozen=True, slots=True)
class IssuedProvisioningToken:
    record: ProvisioningToken
    token: str


@dataclass(frozen=True, slots=True)
class Enrolled:
    """A device's new credentials; the secrets exist nowhere else."""

    device_id: str
    api_token: IssuedToken
    mqtt_username: str
    mqtt_password: str


def create_provisioning_token(session: Session, terms: ProvisioningTerms, now: datetime) -> IssuedProvisioningToken:
    """Create and commit a provisioning token."""
    token = new_token(TokenKind.PROVISIONING)
    record = ProvisioningToken(
        id=token.id,
        secret_hash=hash_secret(token.token),
        created_by=terms.created_by,
        created_at=now,
        expires_at=terms.expires_at,
        uses_left=terms.uses,
        tags=sorted(set(terms.tags)),
        profile=terms.profile,
    )
    session.add(record)
    session.commit()
    log.info("auth.provisioning_token_created", extra={"token_id": record.id, "uses": terms.uses})
    return IssuedProvisioningToken(record, token.token)


def enroll(
    session: Session,
    token: str,
    device_id: str,
    profile: str,
    now: datetime,
    listener: CredentialsListener | None = None,
) -> Enrolled:
    """Spend one use of a provisioning token on ``device_id`` and give that device its credentials.

    Raises NotAuthenticated for an unknown token, ProvisioningRefused for an expired or used-up one or one for
    another profile, and AlreadyEnrolled while the device holds a live API token. ``listener`` hears of the new
    MQTT login once it is committed.
    """
    record = _provisioning(session, token, profile, now)
    # the conditional decrement is atomic, so two devices racing for the last use cannot both win; on
    # SQLite it also takes the write lock, so the checks below see every enrollment before this one
    taken = session.execute(
        update(ProvisioningToken)
        .where(ProvisioningToken.id == record.id, ProvisioningToken.uses_left > 0)
        .values(uses_left=ProvisioningToken.uses_left - 1)
        .execution_options(synchronize_session=False)
    )
    if cast(CursorResult[Any], taken).rowcount == 0:
        raise ProvisioningRefused(f"provisioning token {record.id} is used up", hint=_ASK_OPERATOR)
    live = [t for t in session.scalars(select(ApiToken).where(ApiToken.device_id == device_id)) if is_live(t, now)]
    if live:
        raise AlreadyEnrolled(
            f"device {device_id} is already enrolled (API token {live[0].id})",
            hint=f"to enroll it again (a replaced or re-flashed device), an admin revokes its token first: "
            f"DELETE /api/v1/tokens/{live[0].id}",
        )
    _device(session, device_id, profile, record.tags, now)
    session.flush()  # the device row first: no ORM relationship tells the flush to order it before the credentials
    api_token = add_token(
        session,
        NewToken(Role.DEVICE, f"device {device_id}", f"provisioning token {record.id}", device_id=device_id),
        now,
    )
    password = new_mqtt_password()
    session.merge(
        MqttCredential(
            device_id=device_id, username=device_id, password_hash=hash_mqtt_password(password), created_at=now
        )
    )
    try:
        session.commit()
    except IntegrityError as err:
        session.rollback()
        raise AlreadyEnrolled(
            f"device {device_id} was enrolled by another request at the same moment",
            hint="enroll each device once; an admin revokes its token to enroll it again",
        ) from err
    log.info("auth.enrolled", extra={"device_id": device_id, "provisioning_token": record.id})
    if listener is not None:
        listener.credentials_changed(session)
    return Enrolled(device_id, api_token, mqtt_username=device_id, mqtt_password=password)


def _provisioning(session: Session, token: str, profile: str, now: datetime) -> ProvisioningToken:
    """The provisioning token's record when it may enroll a device of ``profile`` now."""
    parsed = parse_token(token, TokenKind.PROVISIONING)
    record = session.get(ProvisioningToken, parsed.id) if parsed else None
    if record is None or not secret_matches(token, record.secret_hash):
        raise NotAuthenticated("this provisioning token is not known to the server", hint=_ASK_OPERATOR)
    if as_utc(record.expires_at) <= now:
        raise ProvisioningRefused(
            f"provisioning token {record.id} expired at {as_utc(record.expires_at).isoformat()}", hint=_ASK_OPERATOR
        )
    if record.profile is not None and profile != record.profile:
        raise ProvisioningRefused(
            f"provisioning token {record.id} enrolls {record.profile} devices, not {profile or 'a device without a profile'}",
            hint=f"enroll with profile {record.profile!r}, or ask an operator for a token for this profile",
        )
    return record


def _device(session: Session, device_id: str, profile: str, tags: list[str], now: datetime) -> None:
    """Create the device's row, or give an existing one (heard from before enrolling) the token's tags."""
    device = session.get(Device, device_id)
    if device is None:
        session.add(
            Device(
                id=device_id,
                profile=profile,
                agent_version="",
                state="offline",
                status_seq=-1,
                tags=sorted(tags),
                first_seen=now,
                last_seen=now,
            )
        )
        return
    device.tags = sorted(set(device.tags) | set(tags))
    if profile:
        device.profile = profile

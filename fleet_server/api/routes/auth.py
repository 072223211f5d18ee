"""``/api/v1`` credentials: provisioning tokens, device enrollment, API tokens, and who the caller is."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated, Final, Literal

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints

from edgefleet.ids import DeviceId
from edgefleet.keylist import SignedKeyListV1
from fleet_server.api.deps import CallerDep, RuntimeDep, SessionDep, require
from fleet_server.api.ratelimit import RateLimits, too_many
from fleet_server.auth import (
    AlreadyEnrolled,
    AuthError,
    CredentialsListener,
    LastAdmin,
    NewToken,
    NotAuthenticated,
    ProvisioningRefused,
    ProvisioningTerms,
    Role,
    UnknownToken,
    create_provisioning_token,
    create_token,
    enroll,
    list_tokens,
    revoke_token,
)
from fleet_server.auth.tokens import TokenKind, parse_token
from fleet_server.db.auth_models import ApiToken

__all__ = [
    "EnrollIn",
    "EnrolledOut",
    "MqttCredentialsOut",
    "NewTokenOut",
    "ProvisioningTokenIn",
    "ProvisioningTokenOut",
    "TokenIn",
    "TokenOut",
    "WhoAmI",
    "create_api_token",
    "create_provisioning",
    "enroll_device",
    "list_api_tokens",
    "revoke_api_token",
    "router",
    "whoami",
]

router = APIRouter(tags=["auth"])

_STATUS: Final[Mapping[type[AuthError], int]] = {
    NotAuthenticated: 401,
    ProvisioningRefused: 403,
    UnknownToken: 404,
    AlreadyEnrolled: 409,
    LastAdmin: 409,
}
_MAX_EXPIRY_S: Final = 365 * 24 * 3600
Tag = Annotated[str, StringConstraints(min_length=1, max_length=64)]
ProfileName = Annotated[str, StringConstraints(max_length=64)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProvisioningTokenIn(_In):
    expires_in_s: int = Field(default=24 * 3600, ge=60, le=_MAX_EXPIRY_S, description="how long it may enroll")
    uses: int = Field(default=1, ge=1, le=100_000, description="how many devices it may enroll")
    tags: list[Tag] = Field(default_factory=list, max_length=32, description="tags every enrolled device gets")
    profile: ProfileName | None = Field(default=None, description="when set, only devices of this profile may enroll")


class ProvisioningTokenOut(BaseModel):
    id: str
    token: str = Field(description="the secret: shown this once, stored only hashed")
    expires_at: datetime
    uses_left: int
    tags: list[str]
    profile: str | None


class EnrollIn(_In):
    provisioning_token: SecretStr
    device_id: DeviceId
    profile: ProfileName = ""


class MqttCredentialsOut(BaseModel):
    username: str
    password: str = Field(description="shown this once, stored only hashed")


class EnrolledOut(BaseModel):
    device_id: str
    token_id: str
    token: str = Field(description="the device's API token (role device): shown this once, stored only hashed")
    mqtt: MqttCredentialsOut
    key_list: SignedKeyListV1 | None = Field(
        default=None, description="the root-signed list of package-signing keys, for a device with a root key"
    )


class TokenIn(_In):
    name: str = Field(min_length=1, max_length=128, description="who or what holds it, e.g. 'ci' or 'alice'")
    role: Literal[Role.ADMIN, Role.OPERATOR, Role.VIEWER] = Field(
        description="device tokens come from enrollment (POST /api/v1/devices/enroll)"
    )
    expires_in_s: int | None = Field(default=None, ge=60, le=_MAX_EXPIRY_S, description="none: until revoked")


class TokenOut(BaseModel):
    id: str
    name: str
    role: Role
    device_id: str | None
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class NewTokenOut(TokenOut):
    token: str = Field(description="the secret: shown this once, stored only hashed")


class WhoAmI(BaseModel):
    token_id: str
    name: str
    role: Role
    device_id: str | None


@contextmanager
def _as_http() -> Iterator[None]:
    """Turn a refused credential into the HTTP answer that carries the message and the hint."""
    try:
        yield
    except tuple(_STATUS) as err:
        status = next(code for kind, code in _STATUS.items() if isinstance(err, kind))
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        raise HTTPException(status, detail=str(err), headers=headers) from err


def _listener(request: Request) -> CredentialsListener | None:
    # production broker mode's MosquittoAccounts (fleet_server.app), else None: the embedded broker has no logins
    listener: CredentialsListener | None = getattr(request.app.state, "broker_accounts", None)
    return listener


def _utc(moment: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; every time the server stores is UTC
    return moment if moment is None or moment.tzinfo else moment.replace(tzinfo=UTC)


def _token_out(record: ApiToken) -> TokenOut:
    return TokenOut(
        id=record.id,
        name=record.name,
        role=Role(record.role),
        device_id=record.device_id,
        created_by=record.created_by,
        created_at=record.created_at if record.created_at.tzinfo else record.created_at.replace(tzinfo=UTC),
        expires_at=_utc(record.expires_at),
        revoked_at=_utc(record.revoked_at),
        last_used_at=_utc(record.last_used_at),
    )


@router.post("/provisioning-tokens", status_code=201, dependencies=[Depends(require(Role.OPERATOR))])
def create_provisioning(body: ProvisioningTokenIn, session: SessionDep, caller: CallerDep) -> ProvisioningTokenOut:
    """A provisioning token that enrolls up to ``uses`` devices within ``expires_in_s``."""
    now = datetime.now(UTC)
    terms = ProvisioningTerms(
        created_by=f"{caller.name} ({caller.token_id})",
        expires_at=now + timedelta(seconds=body.expires_in_s),
        uses=body.uses,
        tags=tuple(body.tags),
        profile=body.profile,
    )
    issued = create_provisioning_token(session, terms, now)
    record = issued.record
    return ProvisioningTokenOut(
        id=record.id,
        token=issued.token,
        expires_at=terms.expires_at,
        uses_left=record.uses_left,
        tags=record.tags,
        profile=record.profile,
    )


@router.post(
    "/devices/enroll",
    status_code=201,
    responses={
        401: {"description": "unknown provisioning token"},
        403: {},
        409: {"description": "enrolled already"},
        429: {"description": "too many enrollments from this address, or refusals of this provisioning token"},
    },
)
def enroll_device(body: EnrollIn, session: SessionDep, request: Request, runtime: RuntimeDep) -> EnrolledOut:
    """Enroll a device with a provisioning token (no bearer): its API token and MQTT login, shown once."""
    token = body.provisioning_token.get_secret_value()
    parsed = parse_token(token, TokenKind.PROVISIONING)
    # refusals are counted per provisioning token, so guessing at one token's secret stops even from many addresses
    limits: RateLimits = request.app.state.rate_limits
    key = parsed.id if parsed else "malformed"
    wait_s = limits.enroll_token_failures.wait_s(key)
    if wait_s:
        raise too_many(wait_s, f"refused enrollments with provisioning token {key}")
    try:
        with _as_http():
            enrolled = enroll(session, token, body.device_id, body.profile, datetime.now(UTC), _listener(request))
    except HTTPException as err:
        if err.status_code in (401, 403):
            limits.enroll_token_failures.take(key)
        raise
    return EnrolledOut(
        device_id=enrolled.device_id,
        token_id=enrolled.api_token.record.id,
        token=enrolled.api_token.token,
        mqtt=MqttCredentialsOut(username=enrolled.mqtt_username, password=enrolled.mqtt_password),
        key_list=runtime.keys.keys.current.signed if runtime.keys.keys.current else None,
    )


@router.post("/tokens", status_code=201, dependencies=[Depends(require(Role.ADMIN))])
def create_api_token(body: TokenIn, session: SessionDep, caller: CallerDep) -> NewTokenOut:
    """An API token for a person or a program, with the admin, operator or viewer role."""
    now = datetime.now(UTC)
    expires_at = None if body.expires_in_s is None else now + timedelta(seconds=body.expires_in_s)
    new = NewToken(Role(body.role), body.name, f"{caller.name} ({caller.token_id})", expires_at=expires_at)
    issued = create_token(session, new, now)
    return NewTokenOut(**_token_out(issued.record).model_dump(), token=issued.token)


@router.get("/tokens", dependencies=[Depends(require(Role.ADMIN))])
def list_api_tokens(session: SessionDep) -> list[TokenOut]:
    """Every API token (never its secret), revoked ones included."""
    return [_token_out(record) for record in list_tokens(session)]


@router.delete("/tokens/{token_id}", status_code=204, dependencies=[Depends(require(Role.ADMIN))])
def revoke_api_token(token_id: str, session: SessionDep, request: Request) -> Response:
    """Revoke a token at once (a device's loses its MQTT login too, and in production broker mode its connection).

    Revoking again is a no-op.
    """
    with _as_http():
        revoke_token(session, token_id, datetime.now(UTC), _listener(request))
    return Response(status_code=204)


@router.get("/whoami", dependencies=[Depends(require(*Role))])
def whoami(caller: CallerDep) -> WhoAmI:
    """The caller's token: its id, name, role and device."""
    return WhoAmI(token_id=caller.token_id, name=caller.name, role=caller.role, device_id=caller.device_id)

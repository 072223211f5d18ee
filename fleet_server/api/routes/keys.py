"""``/api/v1/keys``: the root-signed list of package-signing keys the server holds and hands to its devices."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from edgefleet.errors import KeyListError
from edgefleet.keylist import SignedKeyListV1
from fleet_server.api.deps import RuntimeDep, SessionDep, require
from fleet_server.auth import Role
from fleet_server.db.models import Device

__all__ = ["KeysOut", "publish_keys", "read_keys", "router"]

router = APIRouter(tags=["keys"])


class KeysOut(BaseModel):
    version: int | None = Field(description="the list's version; none before the first")
    expires: datetime | None
    root_key_id: str | None
    key_ids: list[str] = Field(description="the signing keys the list names")
    key_list: SignedKeyListV1 | None = Field(description="the signed list, as devices receive it")
    devices_by_version: dict[str, int] = Field(
        description="how many devices report each list version ('pinned': no root key, lists mean nothing to them)"
    )


def _keys_out(runtime: RuntimeDep, session: SessionDep) -> KeysOut:
    current = runtime.keys.keys.current
    counts = session.execute(select(Device.keys_version, func.count()).group_by(Device.keys_version)).all()
    return KeysOut(
        version=current.version if current else None,
        expires=current.expires if current else None,
        root_key_id=current.root_key_id if current else None,
        key_ids=sorted(current.keys) if current else [],
        key_list=current.signed if current else None,
        devices_by_version={"pinned" if version is None else str(version): count for version, count in counts},
    )


@router.get("/keys", dependencies=[Depends(require(Role.VIEWER))])
def read_keys(runtime: RuntimeDep, session: SessionDep) -> KeysOut:
    """The key list the server holds, and which list the devices report."""
    return _keys_out(runtime, session)


@router.put(
    "/keys",
    dependencies=[Depends(require(Role.ADMIN))],
    responses={
        409: {"description": "the server holds this list's version or a newer one"},
        422: {"description": "not signed by one of the server's root keys, malformed, or expired"},
    },
)
def publish_keys(body: SignedKeyListV1, runtime: RuntimeDep, session: SessionDep) -> KeysOut:
    """Adopt a newer root-signed key list and send it to every online device on an older one."""
    try:
        adopted = runtime.keys.adopt(body)
    except KeyListError as err:
        raise HTTPException(422, f"{err.message} ({err.hint})" if err.hint else err.message) from err
    if not adopted:
        held = runtime.keys.keys.current
        raise HTTPException(409, f"the server holds key list version {held.version if held else 0} already")
    return _keys_out(runtime, session)

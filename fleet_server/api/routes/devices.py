"""``/api/v1/devices``: each device as it last described itself, with its telemetry totals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import Row, Select, func, select

from fleet_server.api.deps import RuntimeDep, SessionDep, require, require_own_device_or
from fleet_server.auth import Role
from fleet_server.db.models import Device, Telemetry

__all__ = ["DeviceOut", "TagsIn", "get_device", "list_devices", "router", "set_tags"]

router = APIRouter(tags=["devices"])


class TagsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tags: list[Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")]] = Field(
        max_length=32,
        description="the device's tags, replacing the ones it has: cohorts and rollout selectors use them",
    )


class DeviceOut(BaseModel):
    id: str
    state: str
    profile: str
    agent_version: str
    model_name: str | None
    model_version: str | None
    slot: str | None
    tags: list[str] = Field(description="from the provisioning token it enrolled with, or set by an operator")
    first_seen: datetime
    last_seen: datetime
    telemetry_messages: int
    inference_count: int
    error_count: int
    latest_class_counts: list[int] = Field(description="predictions per label in the last telemetry interval")


def _query() -> Select[Device, int | None, int | None, int | None, dict[str, Any] | None]:
    totals = (
        select(
            Telemetry.device_id,
            func.count().label("messages"),
            func.sum(Telemetry.inference_count).label("inferences"),
            func.sum(Telemetry.error_count).label("errors"),
        )
        .group_by(Telemetry.device_id)
        .subquery()
    )
    newest = select(func.max(Telemetry.id).label("id")).group_by(Telemetry.device_id).subquery()
    latest = select(Telemetry.device_id, Telemetry.payload).join(newest, newest.c.id == Telemetry.id).subquery()
    return (
        select(Device, totals.c.messages, totals.c.inferences, totals.c.errors, latest.c.payload)
        .outerjoin(totals, totals.c.device_id == Device.id)
        .outerjoin(latest, latest.c.device_id == Device.id)
        .order_by(Device.id)
    )


def _out(
    row: Row[Device, int | None, int | None, int | None, dict[str, Any] | None], offline_after: timedelta
) -> DeviceOut:
    device, messages, inferences, errors, latest = row
    last_seen = _utc(device.last_seen)
    # a device that went silent without its last will (a broker restart, say) is offline all the same
    silent = datetime.now(UTC) - last_seen > offline_after
    return DeviceOut(
        id=device.id,
        state="offline" if silent else device.state,
        profile=device.profile,
        agent_version=device.agent_version,
        model_name=device.model_name,
        model_version=device.model_version,
        slot=device.slot,
        tags=list(device.tags or []),
        first_seen=_utc(device.first_seen),
        last_seen=last_seen,
        telemetry_messages=messages or 0,
        inference_count=inferences or 0,
        error_count=errors or 0,
        latest_class_counts=(latest or {}).get("class_counts", []),
    )


def _utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; every time the server stores is UTC
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@router.get("/devices", dependencies=[Depends(require(Role.VIEWER))])
def list_devices(session: SessionDep, runtime: RuntimeDep) -> list[DeviceOut]:
    """Every device the server has heard from."""
    offline_after = timedelta(seconds=runtime.settings.offline_after_s)
    return [_out(row, offline_after) for row in session.execute(_query()).all()]


@router.get("/devices/{device_id}", dependencies=[Depends(require_own_device_or(Role.VIEWER))])
def get_device(device_id: str, session: SessionDep, runtime: RuntimeDep) -> DeviceOut:
    """One device; 404 when the server has never heard from it."""
    row = session.execute(_query().where(Device.id == device_id)).one_or_none()
    if row is None:
        raise HTTPException(404, detail=f"no device {device_id!r} has reported to this server")
    return _out(row, timedelta(seconds=runtime.settings.offline_after_s))


@router.put("/devices/{device_id}/tags", dependencies=[Depends(require(Role.OPERATOR))])
def set_tags(device_id: str, body: TagsIn, session: SessionDep, runtime: RuntimeDep) -> DeviceOut:
    """Replace a device's tags (a rollout whose selector the device now matches takes it in); 404 when unknown."""
    device = session.get(Device, device_id)
    if device is None:
        raise HTTPException(404, detail=f"no device {device_id!r} has reported to this server")
    device.tags = sorted(set(body.tags))
    session.commit()
    return get_device(device_id, session, runtime)

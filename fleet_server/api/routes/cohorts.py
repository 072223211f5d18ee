"""``/api/v1/cohorts``: telemetry aggregated per cohort, model version × device profile × tag.

A device with several tags counts in each of its tags' cohorts; an untagged device in the cohort of tag "".
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from fleet_server.api.deps import SessionDep, require
from fleet_server.auth import Role
from fleet_server.db.models import Device, Telemetry

__all__ = ["CohortOut", "list_cohorts", "router"]

router = APIRouter(tags=["cohorts"], dependencies=[Depends(require(Role.VIEWER))])


class CohortOut(BaseModel):
    model_version: str | None
    profile: str
    tag: str
    devices: int
    telemetry_messages: int
    inferences: int
    errors: int
    error_rate: float = Field(description="errors / (inferences + errors) over the window")
    latency_p95_ms: float | None = Field(description="median over the cohort's devices of their mean p95")


@dataclass
class _Cohort:
    devices: set[str] = field(default_factory=set)
    messages: int = 0
    inferences: int = 0
    errors: int = 0
    p95s: list[float] = field(default_factory=list)


@router.get("/cohorts")
def list_cohorts(
    session: SessionDep,
    since_s: float = Query(default=3600.0, gt=0, le=30 * 86400, description="the window, in seconds back from now"),
) -> list[CohortOut]:
    """Each cohort's devices and their telemetry over the window, largest cohorts first."""
    since = datetime.now(UTC) - timedelta(seconds=since_s)
    per_device = session.execute(
        select(
            Telemetry.device_id,
            Telemetry.model_version,
            func.count(),
            func.coalesce(func.sum(Telemetry.inference_count), 0),
            func.coalesce(func.sum(Telemetry.error_count), 0),
            func.avg(Telemetry.latency_p95_ms),
        )
        .where(Telemetry.received_at >= since)
        .group_by(Telemetry.device_id, Telemetry.model_version)
    ).all()
    devices = {d.id: d for d in session.scalars(select(Device).where(Device.id.in_({row[0] for row in per_device})))}
    cohorts: dict[tuple[str | None, str, str], _Cohort] = defaultdict(_Cohort)
    for device_id, version, messages, inferences, errors, p95 in per_device:
        device = devices[device_id]
        for tag in device.tags or [""]:
            cohort = cohorts[(version, device.profile, tag)]
            cohort.devices.add(device_id)
            cohort.messages += int(messages)
            cohort.inferences += int(inferences)
            cohort.errors += int(errors)
            if p95 is not None:
                cohort.p95s.append(float(p95))
    out = [
        CohortOut(
            model_version=version,
            profile=profile,
            tag=tag,
            devices=len(c.devices),
            telemetry_messages=c.messages,
            inferences=c.inferences,
            errors=c.errors,
            error_rate=c.errors / (c.inferences + c.errors) if c.inferences + c.errors else 0.0,
            latency_p95_ms=statistics.median(c.p95s) if c.p95s else None,
        )
        for (version, profile, tag), c in cohorts.items()
    ]
    return sorted(out, key=lambda c: (-c.devices, c.model_version or "", c.profile, c.tag))

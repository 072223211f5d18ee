"""``/api/v1/drift``: drift per device and per cohort over a sliding window, its history, and the open alarms.

Each answer carries, per feature, the reference and live histograms as data (edges and counts), so a client
draws them without a second request.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query

from edgefleet.errors import InputError
from fleet_server.api.deps import RuntimeDep, SessionDep, require
from fleet_server.auth import Role
from fleet_server.drift.history import drift_history, open_alarms
from fleet_server.drift.schemas import CohortDriftOut, DeviceDriftOut, DriftAlarmOut, DriftHistoryOut
from fleet_server.drift.service import cohort_drift, device_drift
from fleet_server.drift.stats import DriftLevel

__all__ = ["get_cohort_drift", "get_device_drift", "get_device_history", "get_history", "list_alarms", "router"]

router = APIRouter(prefix="/drift", tags=["drift"], dependencies=[Depends(require(Role.VIEWER))])

WindowQuery = Annotated[
    float | None,
    Query(gt=0, le=30 * 86400, description="the sliding window in seconds back from now; default: the server's"),
]
SinceQuery = Annotated[float | None, Query(gt=0, le=366 * 86400, description="only checks this many seconds back")]
LimitQuery = Annotated[int, Query(ge=1, le=10_000, description="at most this many rows, newest first")]


@router.get("/devices/{device_id}")
def get_device_drift(
    device_id: str, session: SessionDep, runtime: RuntimeDep, window_s: WindowQuery = None
) -> DeviceDriftOut:
    """One device's drift against its model's reference profile: every feature's histograms, classes, confidence."""
    drift = runtime.settings.drift
    try:
        return device_drift(
            session, device_id, window_s=window_s or drift.window_s, now=datetime.now(UTC), thresholds=drift.thresholds
        )
    except InputError as err:
        raise HTTPException(404, detail=str(err)) from err


@router.get("/cohorts")
def get_cohort_drift(session: SessionDep, runtime: RuntimeDep, window_s: WindowQuery = None) -> list[CohortDriftOut]:
    """Every cohort (model version × profile × tag) heard from in the window, its devices' sketches added."""
    drift = runtime.settings.drift
    return cohort_drift(
        session, window_s=window_s or drift.window_s, now=datetime.now(UTC), thresholds=drift.thresholds
    )


def _since(since_s: float | None) -> datetime | None:
    return datetime.now(UTC) - timedelta(seconds=since_s) if since_s is not None else None


@router.get("/history")
def get_history(
    session: SessionDep,
    scope: Literal["device", "cohort"] | None = None,
    device_id: str | None = Query(default=None, max_length=64),
    model_version: str | None = Query(default=None, max_length=64),
    tag: str | None = Query(default=None, max_length=128),
    since_s: SinceQuery = None,
    limit: LimitQuery = 1000,
) -> list[DriftHistoryOut]:
    """The periodic drift checks' rows, newest first, narrowed by every filter given."""
    return drift_history(
        session,
        scope=scope,
        device_id=device_id,
        model_version=model_version,
        tag=tag,
        since=_since(since_s),
        limit=limit,
    )


@router.get("/devices/{device_id}/history")
def get_device_history(
    device_id: str, session: SessionDep, since_s: SinceQuery = None, limit: LimitQuery = 1000
) -> list[DriftHistoryOut]:
    """One device's rows of the periodic drift checks, newest first."""
    return drift_history(session, scope="device", device_id=device_id, since=_since(since_s), limit=limit)


@router.get("/alarms")
def list_alarms(
    session: SessionDep,
    level: Literal["alarm", "warn"] = Query(default="alarm", description="warn: warnings and alarms"),
) -> list[DriftAlarmOut]:
    """Devices and cohorts at that level in the latest drift check, and since when."""
    return open_alarms(session, at_least=DriftLevel(level))

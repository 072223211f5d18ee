"""``/api/v1/rollouts``: create a staged rollout, follow its waves and gates, pause, resume or abort it."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from edgefleet.errors import InputError
from fleet_server.api.deps import CallerDep, RuntimeDep, SessionDep, require
from fleet_server.auth import Role
from fleet_server.db.models import Package
from fleet_server.db.rollout_models import AuditRow, Rollout, RolloutDevice
from fleet_server.drift.history import latest_check
from fleet_server.rollouts import engine
from fleet_server.rollouts.spec import RolloutSpec

__all__ = [
    "ActionIn",
    "AuditOut",
    "GateOut",
    "RolloutDeviceOut",
    "RolloutOut",
    "abort_rollout",
    "create_rollout",
    "get_rollout",
    "list_rollouts",
    "pause_rollout",
    "resume_rollout",
    "router",
]

router = APIRouter(tags=["rollouts"], dependencies=[Depends(require(Role.VIEWER))])
_OPERATOR = [Depends(require(Role.OPERATOR))]


class GateOut(BaseModel):
    name: str
    value: float | None
    threshold: float
    passed: bool
    detail: str


class AuditOut(BaseModel):
    at: datetime
    actor: str
    action: str
    detail: str


class RolloutDeviceOut(BaseModel):
    device_id: str
    wave: int = Field(description="the wave that took it, counted from 1")
    state: str
    previous_version: str | None
    reason: str


class RolloutOut(BaseModel):
    id: str
    package: str
    state: str
    reason: str
    wave: int = Field(description="the current wave, counted from 1")
    waves: int
    wave_started_at: datetime | None
    devices: dict[str, int] = Field(description="devices taken so far, by the state of their update")
    device_updates: list[RolloutDeviceOut]
    gates: list[GateOut] = Field(description="the current wave's gates as they stand now")
    spec: RolloutSpec
    audit: list[AuditOut]


class ActionIn(BaseModel):
    reason: str = Field(default="", max_length=2000)


@contextmanager
def _as_http(status: int) -> Iterator[None]:
    try:
        yield
    except InputError as err:
        raise HTTPException(status, detail=str(err)) from err


def _out(session: Session, rollout: Rollout) -> RolloutOut:
    spec = RolloutSpec.model_validate(rollout.spec)
    rows = session.scalars(select(RolloutDevice).where(RolloutDevice.rollout_id == rollout.id)).all()
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.state] = counts.get(row.state, 0) + 1
    package = session.get(Package, rollout.package_id)
    started = rollout.wave_started_at or rollout.created_at
    version = package.version if package else spec.version
    judged = engine.judge_wave(session, spec, rows, version, started)
    gates = [
        GateOut(name=g.name, value=g.value, threshold=g.threshold, passed=g.passed, detail=g.detail) for g in judged
    ]
    gates += _drift_gate(session, spec, rows, version)
    trail = session.scalars(select(AuditRow).where(AuditRow.rollout_id == rollout.id).order_by(AuditRow.id)).all()
    return RolloutOut(
        id=rollout.id,
        package=spec.package,
        state=rollout.state,
        reason=rollout.reason,
        wave=rollout.wave + 1,
        waves=len(spec.waves),
        wave_started_at=rollout.wave_started_at,
        devices=counts,
        device_updates=[
            RolloutDeviceOut(
                device_id=r.device_id,
                wave=r.wave + 1,
                state=r.state,
                previous_version=r.previous_version,
                reason=r.reason,
            )
            for r in rows
        ],
        gates=gates,
        spec=spec,
        audit=[AuditOut(at=a.at, actor=a.actor, action=a.action, detail=a.detail) for a in trail],
    )


def _drift_gate(session: Session, spec: RolloutSpec, rows: Sequence[RolloutDevice], version: str) -> list[GateOut]:
    """The drift gate as the latest periodic drift check saw it (the engine judges it afresh at the bake's end;
    a GET must not recompute drift for every updated device)."""
    fails_at = spec.gates.drift_fails_at
    if fails_at is None:
        return []
    committed = [r.device_id for r in rows if r.state == "committed"]
    checked = latest_check(session, model_name=spec.name, model_version=version, device_ids=committed)
    failing = {"alarm"} if fails_at == "alarm" else {"warn", "alarm"}
    bad = [c for c in checked if c.level.value in failing and (c.scope == "cohort" or c.device_id in committed)]
    if not committed:
        detail = "judged once devices have committed the new version"
    elif not checked:
        detail = "no drift check has seen the new version yet"
    elif not bad:
        detail = f"no drift {fails_at} in the latest check ({checked[0].at:%Y-%m-%d %H:%M:%S} UTC)"
    else:
        named = [f"device {c.device_id}" if c.scope == "device" else f"cohort {c.profile}/{c.tag}" for c in bad[:5]]
        detail = f"drift {fails_at} in the latest check on " + ", ".join(named)
    return [GateOut(name="drift", value=float(len(bad)), threshold=0.0, passed=not bad, detail=detail)]


def _get(session: Session, rollout_id: str) -> Rollout:
    rollout = session.get(Rollout, rollout_id)
    if rollout is None:
        raise HTTPException(404, detail=f"no rollout {rollout_id} (list them: GET /api/v1/rollouts)")
    return rollout


@router.post("/rollouts", status_code=201, dependencies=_OPERATOR)
def create_rollout(spec: RolloutSpec, session: SessionDep, caller: CallerDep) -> RolloutOut:
    """Start rolling ``spec.package`` out to the selected devices, wave by wave."""
    with _as_http(404):
        rollout = engine.create_rollout(session, spec, actor=caller.name)
    session.commit()
    return _out(session, rollout)


@router.get("/rollouts")
def list_rollouts(session: SessionDep) -> list[RolloutOut]:
    """Every rollout, newest first."""
    rollouts = session.scalars(select(Rollout).order_by(Rollout.created_at.desc())).all()
    return [_out(session, r) for r in rollouts]


@router.get("/rollouts/{rollout_id}")
def get_rollout(rollout_id: str, session: SessionDep) -> RolloutOut:
    """One rollout: its wave, its devices by state, its gates now, and its audit trail."""
    return _out(session, _get(session, rollout_id))


@router.post("/rollouts/{rollout_id}/pause", dependencies=_OPERATOR)
def pause_rollout(rollout_id: str, action: ActionIn, session: SessionDep, caller: CallerDep) -> RolloutOut:
    """Assign no more devices until resumed; devices already updating finish."""
    with _as_http(409):
        rollout = _get(session, rollout_id)
        engine.pause(session, rollout, caller.name, action.reason or "paused by an operator")
    session.commit()
    return _out(session, rollout)


@router.post("/rollouts/{rollout_id}/resume", dependencies=_OPERATOR)
def resume_rollout(rollout_id: str, session: SessionDep, caller: CallerDep) -> RolloutOut:
    """Go on from the current wave; its bake time starts again."""
    with _as_http(409):
        rollout = _get(session, rollout_id)
        engine.resume(session, rollout, caller.name)
    session.commit()
    return _out(session, rollout)


@router.post("/rollouts/{rollout_id}/abort", dependencies=_OPERATOR)
def abort_rollout(
    rollout_id: str, action: ActionIn, session: SessionDep, runtime: RuntimeDep, caller: CallerDep
) -> RolloutOut:
    """Stop for good and roll back every device this rollout reached."""
    with _as_http(409):
        rollout = _get(session, rollout_id)
        engine.abort(session, rollout, caller.name, action.reason or "aborted by an operator", runtime.commands)
    session.commit()
    return _out(session, rollout)

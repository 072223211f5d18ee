"""Rollouts on their way: a tick assigns each wave's devices, reads back what the devices report, and judges
the wave's gates after its bake time. Every state lives in the database and every transition is an audit row,
so a server killed at any moment continues where it was when it starts again.

The devices' own events are the truth of what they run (DESIGN.md: the server's view is rebuilt from them):
a device counts as committed, failed or rolled back only when it says so.
"""

from __future__ import annotations

import logging
import secrets
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from edgefleet.errors import InputError
from edgefleet.messages import AssignCommand, RollbackCommand
from fleet_server.db.models import Device, Event, Package, Telemetry
from fleet_server.db.rollout_models import AuditRow, Rollout, RolloutDevice
from fleet_server.drift.service import BASELINE, ScopeDrift, fleet_drift
from fleet_server.drift.stats import DriftLevel, DriftThresholds
from fleet_server.periodic import Periodic
from fleet_server.rollouts.commands import CommandPublisher
from fleet_server.rollouts.spec import RolloutSpec, RolloutState

__all__ = [
    "GateResult",
    "RolloutEngine",
    "abort",
    "audit",
    "create_rollout",
    "judge_drift",
    "judge_wave",
    "pause",
    "resume",
]

log = logging.getLogger(__name__)

# what a device's update can end as, by the event that ends it
_FINAL = {"committed": "committed", "failed": "failed", "rolled-back": "rolled-back"}


@dataclass(frozen=True, slots=True)
class GateResult:
    name: str
    value: float | None
    threshold: float
    passed: bool
    detail: str


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(at: datetime) -> datetime:
    # SQLite hands back naive datetimes; every time the server stores is UTC
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def audit(session: Session, actor: str, action: str, rollout_id: str | None, detail: str = "") -> None:
    session.add(AuditRow(at=_now(), actor=actor, action=action, rollout_id=rollout_id, detail=detail[:2000]))


def create_rollout(session: Session, spec: RolloutSpec, actor: str) -> Rollout:
    """A running rollout of ``spec``; raises InputError when the package is not in the registry."""
    package = session.scalars(
        select(Package).where(Package.name == spec.name, Package.version == spec.version)
    ).one_or_none()
    if package is None:
        raise InputError(f"the registry holds no package {spec.package}", hint="upload it first: POST /api/v1/models")
    now = _now()
    rollout = Rollout(
        id=f"r-{now:%Y%m%d}-{secrets.token_hex(4)}",
        package_id=package.id,
        spec=spec.model_dump(mode="json"),
        state=RolloutState.RUNNING,
        wave=0,
        wave_started_at=now,
        reason="",
        created_at=now,
        updated_at=now,
    )
    session.add(rollout)
    audit(session, actor, "created", rollout.id, f"{spec.package} in {len(spec.waves)} waves")
    return rollout


def _transition(session: Session, rollout: Rollout, state: RolloutState, actor: str, reason: str) -> None:
    rollout.state, rollout.reason, rollout.updated_at = state, reason, _now()
    audit(session, actor, state.value, rollout.id, reason)
    log.info("rollout.transition", extra={"rollout": rollout.id, "state": state.value, "reason": reason})


def pause(session: Session, rollout: Rollout, actor: str, reason: str = "paused by an operator") -> None:
    _require(rollout, RolloutState.RUNNING, "pause")
    _transition(session, rollout, RolloutState.PAUSED, actor, reason)


def resume(session: Session, rollout: Rollout, actor: str) -> None:
    """Run again; the current wave's bake time starts over, so its gates judge what happens from now on."""
    _require(rollout, RolloutState.PAUSED, "resume")
    rollout.wave_started_at = _now()
    _transition(session, rollout, RolloutState.RUNNING, actor, "resumed")


def abort(session: Session, rollout: Rollout, actor: str, reason: str, publisher: CommandPublisher) -> None:
    """Stop for good and send every device the rollout reached a rollback."""
    if rollout.state in (RolloutState.COMPLETED, RolloutState.ABORTED):
        raise InputError(f"rollout {rollout.id} is already {rollout.state}", hint="nothing to abort")
    _transition(session, rollout, RolloutState.ABORTED, actor, reason)
    rows = session.scalars(select(RolloutDevice).where(RolloutDevice.rollout_id == rollout.id)).all()
    for row in rows:
        if row.state in ("assigned", "committed"):
            device = session.get(Device, row.device_id)
            if device is not None:
                publisher.send(session, device, RollbackCommand(rollout_id=rollout.id, reason=reason[:2000]))
                row.state = "rolling-back"


def _require(rollout: Rollout, state: RolloutState, action: str) -> None:
    if rollout.state != state:
        raise InputError(
            f"rollout {rollout.id} is {rollout.state}, so it cannot {action}", hint=f"only a {state} rollout can"
        )


class RolloutEngine:
    """Ticks every ``tick_s`` on its own thread; each running rollout advances in its own transaction."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        publisher: CommandPublisher,
        public_url: str,
        tick_s: float = 1.0,
        drift_thresholds: DriftThresholds | None = None,
    ) -> None:
        self._sessions = sessions
        self._drift_thresholds = drift_thresholds or DriftThresholds()
        self._publisher = publisher
        self._public_url = public_url.rstrip("/")
        self._periodic = Periodic("rollout.tick", tick_s, self.tick)
        self._resumed: set[str] = set()

    def start(self) -> None:
        self._periodic.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._periodic.stop(timeout_s)

    def tick(self) -> None:
        with self._sessions() as session:
            running = session.scalars(select(Rollout.id).where(Rollout.state == RolloutState.RUNNING)).all()
        for rollout_id in running:
            with self._sessions() as session, session.begin():
                rollout = session.get(Rollout, rollout_id)
                if rollout is not None and rollout.state == RolloutState.RUNNING:
                    self._advance(session, rollout)

    def _advance(self, session: Session, rollout: Rollout) -> None:
        spec = RolloutSpec.model_validate(rollout.spec)
        package = session.get(Package, rollout.package_id)
        assert package is not None  # a foreign key
        rows = _read_outcomes(session, rollout)
        if rollout.id not in self._resumed:
            # a server killed between its commit and the broker taking a command must not leave a device
            # waiting for it: assignments still open are sent again (the agent ignores one it already holds)
            self._resumed.add(rollout.id)
            for row in rows:
                if row.state == "assigned":
                    device = session.get(Device, row.device_id)
                    if device is not None:
                        self._publisher.send(session, device, self._command(rollout, spec, package))
        selected = _selected(session, spec)
        target = spec.waves[rollout.wave].target(len(selected))
        taken = {row.device_id for row in rows}
        for device in [d for d in selected if d.id not in taken][: max(0, target - len(rows))]:
            rows.append(self._assign(session, rollout, spec, package, device))
        started = _aware(rollout.wave_started_at or rollout.created_at)
        results = judge_wave(session, spec, rows, package.version, started)
        failed = [r for r in results if not r.passed]
        elapsed = _now() - started
        if any(r.name == "success" for r in failed):
            # more failures than the gate allows already: waiting out the bake time cannot mend that
            self._fail(session, rollout, spec, failed)
            return
        if elapsed < timedelta(seconds=spec.gates.bake_s):
            return
        # drift needs the bake time's telemetry, and is the dearest gate to compute: judged only from here on
        results += judge_drift(session, spec, rows, package.version, started, self._drift_thresholds)
        failed = [r for r in results if not r.passed]
        if not failed:
            self._next_wave(session, rollout, spec, results)
        elif [r.name for r in failed] != ["reported"] or elapsed >= timedelta(seconds=spec.gates.wave_timeout_s):
            self._fail(session, rollout, spec, failed)

    def _command(self, rollout: Rollout, spec: RolloutSpec, package: Package) -> AssignCommand:
        return AssignCommand(
            rollout_id=rollout.id,
            package=spec.package,
            url=f"{self._public_url}/api/v1/packages/{package.file_sha256}",
            sha256=package.file_sha256,
            size_bytes=package.size_bytes,
            deadline_ts=time.time() + spec.download_deadline_s,
        )

    def _assign(
        self, session: Session, rollout: Rollout, spec: RolloutSpec, package: Package, device: Device
    ) -> RolloutDevice:
        row = RolloutDevice(
            rollout_id=rollout.id,
            device_id=device.id,
            wave=rollout.wave,
            state="assigned",
            previous_version=device.model_version,
            reason="",
            assigned_at=_now(),
        )
        session.add(row)
        self._publisher.send(session, device, self._command(rollout, spec, package))
        return row

    def _next_wave(self, session: Session, rollout: Rollout, spec: RolloutSpec, results: Sequence[GateResult]) -> None:
        summary = "; ".join(r.detail for r in results)
        if rollout.wave + 1 >= len(spec.waves):
            _transition(session, rollout, RolloutState.COMPLETED, "engine", f"every wave passed ({summary})")
            return
        audit(session, "engine", "wave-passed", rollout.id, f"wave {rollout.wave + 1} of {len(spec.waves)}: {summary}")
        rollout.wave += 1
        rollout.wave_started_at = rollout.updated_at = _now()

    def _fail(self, session: Session, rollout: Rollout, spec: RolloutSpec, failed: Sequence[GateResult]) -> None:
        reason = f"wave {rollout.wave + 1} failed its gates: " + "; ".join(r.detail for r in failed)
        if spec.on_failure == "abort":
            abort(session, rollout, "engine", reason, self._publisher)
        else:
            pause(session, rollout, "engine", reason)


def _read_outcomes(session: Session, rollout: Rollout) -> list[RolloutDevice]:
    """The rollout's devices, each brought up to date with the last final event it sent for this rollout."""
    rows = list(session.scalars(select(RolloutDevice).where(RolloutDevice.rollout_id == rollout.id)))
    last = (
        select(Event.device_id, func.max(Event.id).label("id"))
        .where(Event.rollout_id == rollout.id, Event.kind.in_(list(_FINAL)))
        .group_by(Event.device_id)
        .subquery()
    )
    finals = {e.device_id: e for e in session.scalars(select(Event).join(last, last.c.id == Event.id))}
    for row in rows:
        event = finals.get(row.device_id)
        if event is not None and row.state != _FINAL[event.kind]:
            row.state, row.reason, row.finished_at = _FINAL[event.kind], event.detail[:2000], event.received_at
    return rows


def _selected(session: Session, spec: RolloutSpec) -> list[Device]:
    devices = session.scalars(select(Device).order_by(Device.id)).all()
    return [d for d in devices if spec.selector.matches(d.id, list(d.tags or []), d.profile)]


def judge_wave(
    session: Session, spec: RolloutSpec, rows: Sequence[RolloutDevice], version: str, since: datetime
) -> list[GateResult]:
    """The gates of the devices assigned so far: reported, success, then the updated devices' telemetry."""
    gates = spec.gates
    total = len(rows)
    finished = [r for r in rows if r.state in ("committed", "failed", "rolled-back")]
    committed = [r for r in finished if r.state == "committed"]
    reported = len(finished) / total if total else 0.0
    success = len(committed) / len(finished) if finished else 1.0
    allowed_failures = (1 - gates.min_success) * total
    results = [
        GateResult(
            "success",
            success,
            gates.min_success,
            len(finished) - len(committed) <= allowed_failures,
            f"{len(committed)} of {len(finished)} updates committed (at least {gates.min_success:.0%})",
        ),
        GateResult(
            "reported",
            reported,
            gates.min_reported,
            reported >= gates.min_reported,
            f"{len(finished)} of {total} devices reported (at least {gates.min_reported:.0%})",
        ),
    ]
    ids = [r.device_id for r in committed]
    errors, answers = _errors(session, ids, version, since)
    if answers:
        rate = errors / answers
        results.append(
            GateResult(
                "error-rate",
                rate,
                gates.max_error_rate,
                rate <= gates.max_error_rate,
                f"inference error rate {rate:.1%} (at most {gates.max_error_rate:.0%})",
            )
        )
    ratio = _latency_ratio(session, committed, version)
    if ratio is not None:
        results.append(
            GateResult(
                "latency",
                ratio,
                gates.max_latency_ratio,
                ratio <= gates.max_latency_ratio,
                f"p95 latency {ratio:.2f}× the previous version on the same devices (at most "
                f"{gates.max_latency_ratio:g}×)",
            )
        )
    return results


def _errors(session: Session, device_ids: list[str], version: str, since: datetime) -> tuple[int, int]:
    if not device_ids:
        return 0, 0
    errors, inferences = session.execute(
        select(func.coalesce(func.sum(Telemetry.error_count), 0), func.coalesce(func.sum(Telemetry.inference_count), 0))
        .where(Telemetry.device_id.in_(device_ids), Telemetry.model_version == version)
        .where(Telemetry.received_at >= since)
    ).one()
    return int(errors), int(errors) + int(inferences)


def _latency_ratio(session: Session, committed: Sequence[RolloutDevice], version: str) -> float | None:
    """Median over the devices of (mean p95 on the new version / mean p95 on the one before), where both exist."""
    pairs = [(row.device_id, row.previous_version) for row in committed if row.previous_version is not None]
    if not pairs:
        return None
    # one query for all the devices, not one each: the last wave's ticks asked it a thousand times
    means: dict[tuple[str, str | None], float | None] = {
        (device_id, model_version): mean
        for device_id, model_version, mean in session.execute(
            select(Telemetry.device_id, Telemetry.model_version, func.avg(Telemetry.latency_p95_ms))
            .where(Telemetry.device_id.in_([device_id for device_id, _ in pairs]))
            .where(Telemetry.model_version.in_(sorted({version, *(previous for _, previous in pairs)})))
            .where(Telemetry.latency_p95_ms.is_not(None))
            .group_by(Telemetry.device_id, Telemetry.model_version)
        )
    }
    ratios = []
    for device_id, previous in pairs:
        after, before = means.get((device_id, version)), means.get((device_id, previous))
        if after is not None and before:
            ratios.append(float(after) / float(before))
    return statistics.median(ratios) if ratios else None


_FAILING = {"alarm": {DriftLevel.ALARM}, "warn": {DriftLevel.WARN, DriftLevel.ALARM}}


def judge_drift(
    session: Session,
    spec: RolloutSpec,
    rows: Sequence[RolloutDevice],
    version: str,
    since: datetime,
    thresholds: DriftThresholds,
) -> list[GateResult]:
    """The drift gate: no updated device, and no cohort of one, at ``drift_fails_at`` on ``version`` since ``since``.

    Not enough data passes (a short bake gives a few hundred samples at most, and a gate that fails for want of
    data would stop every rollout of a quiet fleet); none when the gate is off or nothing committed yet.
    """
    fails_at = spec.gates.drift_fails_at
    committed = {r.device_id for r in rows if r.state == "committed"}
    if fails_at is None or not committed:
        return []
    fleet = fleet_drift(session, since=since, until=_now(), thresholds=thresholds, model_version=version)
    failing = _FAILING[fails_at]

    def drifted(scope: ScopeDrift) -> bool:
        return scope.model is not None and scope.model[0] == spec.name and scope.summary.level in failing

    devices = [d for d in fleet.devices if d.device_id in committed and drifted(d)]
    updated = [c for c in fleet.cohorts if committed.intersection(c.device_ids)]
    cohorts = [c for c in updated if drifted(c)]
    # a device fresh on the new version is still collecting its own baseline: its cohort speaks for it meanwhile,
    # unless it is too small to be judged against the package (min_cohort_devices)
    judged = sum(1 for d in fleet.devices if d.device_id in committed and d.summary.reference == BASELINE)
    unjudged = sum(1 for c in updated if c.summary.level == DriftLevel.NOT_ENOUGH_DATA)
    if not devices and not cohorts:
        detail = (
            f"no drift {fails_at} on {judged} of {len(committed)} updated devices judged against their own "
            f"baseline, or on their cohorts ({unjudged} of {len(updated)} without enough data or devices to judge)"
        )
    else:
        named = [f"device {d.device_id}" + _worst(d) for d in devices[:5]]
        named += [f"cohort {'/'.join(str(part) for part in (c.cohort or ())[1:])}" + _worst(c) for c in cohorts[:5]]
        detail = f"drift {fails_at} on " + ", ".join(named)
    return [GateResult("drift", float(len(devices) + len(cohorts)), 0.0, not devices and not cohorts, detail)]


def _worst(scope: ScopeDrift) -> str:
    s = scope.summary
    if s.worst_feature is None or s.worst_psi is None:
        return f" ({s.level})"
    return f" ({s.level}: {s.worst_feature} PSI {s.worst_psi:.2f})"

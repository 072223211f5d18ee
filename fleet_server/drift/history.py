"""The drift history: a periodic check writes every device's and cohort's level, and the reads of what it wrote.

The check runs on its own thread (the maths is numpy and the queries are blocking, so it stays off the event
loop); each check is one transaction: it fills the telemetry buckets received since the last check, closes the
devices' baselines that are complete, judges, writes the history, and deletes history older than the retention
and buckets no window reaches any more.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, delete, func, insert, select
from sqlalchemy.orm import Session, aliased, sessionmaker

from fleet_server.db.drift_models import DriftCheckRow
from fleet_server.drift.buckets import close_baselines, fill, prune_buckets
from fleet_server.drift.schemas import DriftAlarmOut, DriftHistoryOut
from fleet_server.drift.service import FleetDrift, ScopeDrift, fleet_drift
from fleet_server.drift.settings import DriftSettings
from fleet_server.drift.stats import DriftLevel
from fleet_server.drift.window import aware
from fleet_server.periodic import Periodic

__all__ = ["DriftMonitor", "drift_history", "latest_check", "open_alarms", "record_check"]

log = logging.getLogger(__name__)


def _row(at: datetime, scope: str, drift: ScopeDrift, window_s: float) -> dict[str, Any]:
    name, version, profile, tag = drift.cohort or (*(drift.model or (None, None)), None, None)
    s = drift.summary
    return {
        "at": at,
        "scope": scope,
        "device_id": drift.device_id,
        "model_name": name,
        "model_version": version,
        "profile": profile,
        "tag": tag,
        "level": s.level.value,
        "worst_feature": s.worst_feature,
        "worst_psi": s.worst_psi,
        "estimated_accuracy": s.estimated_accuracy,
        "sample_count": s.sample_count,
        "window_s": window_s,
    }


def record_check(session: Session, *, now: datetime, settings: DriftSettings) -> FleetDrift:
    """Judge every device and cohort heard from in the window ending ``now``; one history row each; prune old rows."""
    mark = fill(session, now=now, settings=settings)
    close_baselines(session, mark=mark, settings=settings)
    fleet = fleet_drift(
        session, since=now - timedelta(seconds=settings.window_s), until=now, thresholds=settings.thresholds
    )
    rows = [_row(now, "device", d, settings.window_s) for d in fleet.devices]
    rows += [_row(now, "cohort", c, settings.window_s) for c in fleet.cohorts]
    if rows:
        session.execute(insert(DriftCheckRow), rows)
    session.execute(
        delete(DriftCheckRow).where(DriftCheckRow.at < now - timedelta(seconds=settings.history_retention_s))
    )
    prune_buckets(session, mark=mark, settings=settings)
    return fleet


def _history_out(row: DriftCheckRow) -> DriftHistoryOut:
    return DriftHistoryOut(
        at=_aware(row.at),
        scope="device" if row.scope == "device" else "cohort",
        device_id=row.device_id,
        model_name=row.model_name,
        model_version=row.model_version,
        profile=row.profile,
        tag=row.tag,
        level=DriftLevel(row.level),
        worst_feature=row.worst_feature,
        worst_psi=row.worst_psi,
        estimated_accuracy=row.estimated_accuracy,
        sample_count=row.sample_count,
    )


def _aware(at: datetime) -> datetime:
    return aware(at)


def drift_history(
    session: Session,
    *,
    scope: str | None = None,
    device_id: str | None = None,
    model_version: str | None = None,
    tag: str | None = None,
    since: datetime | None = None,
    limit: int = 1000,
) -> list[DriftHistoryOut]:
    """History rows matching every filter given, newest first, at most ``limit``."""
    query = select(DriftCheckRow).order_by(DriftCheckRow.at.desc(), DriftCheckRow.id.desc()).limit(limit)
    filters: list[ColumnElement[bool]] = []
    if scope is not None:
        filters.append(DriftCheckRow.scope == scope)
    if device_id is not None:
        filters.append(DriftCheckRow.device_id == device_id)
    if model_version is not None:
        filters.append(DriftCheckRow.model_version == model_version)
    if tag is not None:
        filters.append(DriftCheckRow.tag == tag)
    if since is not None:
        filters.append(DriftCheckRow.at >= since)
    return [_history_out(row) for row in session.scalars(query.where(*filters))]


def latest_check(
    session: Session, *, model_name: str, model_version: str, device_ids: Sequence[str]
) -> list[DriftHistoryOut]:
    """The latest periodic check's rows of ``device_ids`` and of the cohorts on that model version (no recomputation:
    what a page showing a rollout's drift gate reads)."""
    latest = session.scalar(select(func.max(DriftCheckRow.at)))
    if latest is None:
        return []
    query = select(DriftCheckRow).where(
        DriftCheckRow.at == latest,
        DriftCheckRow.model_name == model_name,
        DriftCheckRow.model_version == model_version,
    )
    wanted = set(device_ids)
    return [_history_out(row) for row in session.scalars(query) if row.scope == "cohort" or row.device_id in wanted]


def _levels_from(level: DriftLevel) -> list[str]:
    return [DriftLevel.ALARM.value] if level is DriftLevel.ALARM else [DriftLevel.WARN.value, DriftLevel.ALARM.value]


def open_alarms(session: Session, *, at_least: DriftLevel = DriftLevel.ALARM) -> list[DriftAlarmOut]:
    """Devices and cohorts at ``at_least`` (ALARM or WARN) in the latest check, with when their run began."""
    latest = session.scalar(select(func.max(DriftCheckRow.at)))
    if latest is None:
        return []
    wanted = _levels_from(at_least)
    current = session.scalars(
        select(DriftCheckRow).where(DriftCheckRow.at == latest, DriftCheckRow.level.in_(wanted))
    ).all()
    return [_alarm_out(row, _run_start(session, row, wanted)) for row in current]


def _run_start(session: Session, row: DriftCheckRow, wanted: Sequence[str]) -> datetime:
    """The first check of this device's or cohort's unbroken run at a wanted level, ending at ``row``."""
    same = aliased(DriftCheckRow)
    key = [
        same.scope == row.scope,
        same.device_id.is_not_distinct_from(row.device_id),
        same.model_name.is_not_distinct_from(row.model_name),
        same.model_version.is_not_distinct_from(row.model_version),
        same.profile.is_not_distinct_from(row.profile),
        same.tag.is_not_distinct_from(row.tag),
    ]
    last_calm = session.scalar(select(func.max(same.at)).where(*key, same.level.not_in(wanted), same.at < row.at))
    first = select(func.min(same.at)).where(*key, same.level.in_(wanted))
    if last_calm is not None:
        first = first.where(same.at > last_calm)
    return _aware(session.scalar(first) or row.at)


def _alarm_out(row: DriftCheckRow, since: datetime) -> DriftAlarmOut:
    out = _history_out(row)
    return DriftAlarmOut(**out.model_dump(exclude={"at"}), checked_at=out.at, since=since)


class DriftMonitor:
    """Runs ``record_check`` every ``settings.check_interval_s`` on its own thread until stopped."""

    def __init__(self, sessions: sessionmaker[Session], settings: DriftSettings) -> None:
        self._sessions = sessions
        self._settings = settings
        self._periodic = Periodic("drift.check", settings.check_interval_s, self.check)

    def start(self) -> None:
        self._periodic.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._periodic.stop(timeout_s)

    def check(self) -> FleetDrift:
        """One check now, in its own transaction."""
        with self._sessions() as session, session.begin():
            fleet = record_check(session, now=datetime.now(UTC), settings=self._settings)
        alarms = sum(1 for s in [*fleet.devices, *fleet.cohorts] if s.summary.level is DriftLevel.ALARM)
        log.info(
            "drift.checked", extra={"devices": len(fleet.devices), "cohorts": len(fleet.cohorts), "alarms": alarms}
        )
        return fleet

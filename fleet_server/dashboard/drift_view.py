"""Drift for the pages, from the drift service: each feature's live histogram over its reference, and open alarms."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from edgefleet.errors import InputError
from fleet_server.dashboard import levels
from fleet_server.drift.history import open_alarms as drift_alarms
from fleet_server.drift.service import device_drift as service_device_drift
from fleet_server.drift.settings import DriftSettings
from fleet_server.drift.stats import DriftLevel

__all__ = ["DriftAlarm", "DriftView", "FeatureDrift", "device_drift", "open_alarms"]


@dataclass(frozen=True, slots=True)
class FeatureDrift:
    name: str
    edges: list[float]
    reference: list[int]
    live: list[int]
    psi: float | None
    ks: float | None
    level: str

    @property
    def colour(self) -> str:
        return levels.of_drift(self.level)


@dataclass(frozen=True, slots=True)
class DriftView:
    features: list[FeatureDrift]
    level: str
    note: str
    estimated_accuracy: float | None


@dataclass(frozen=True, slots=True)
class DriftAlarm:
    level: str
    subject: str
    message: str
    device_id: str | None
    since: datetime


def device_drift(session: Session, device_id: str, now: datetime, settings: DriftSettings) -> DriftView | None:
    """One device's features over the drift window, or None when it has no live sketches to compare yet."""
    try:
        out = service_device_drift(
            session, device_id, window_s=settings.window_s, now=now, thresholds=settings.thresholds
        )
    except InputError:
        return None  # a device the server never heard from has no drift
    features = [
        FeatureDrift(f.name, f.edges, f.reference_counts, f.live_counts, f.psi, f.ks, str(f.level))
        for f in out.features
        if f.live_count > 0
    ]
    if not features:
        return None
    return DriftView(features, str(out.level), out.note, out.estimated_accuracy)


def open_alarms(session: Session) -> list[DriftAlarm]:
    """Devices and cohorts at warning or alarm in the server's latest periodic drift check."""
    alarms = []
    for a in drift_alarms(session, at_least=DriftLevel.WARN):
        if a.scope == "device":
            subject = f"drift on {a.device_id}"
        else:
            subject = f"drift in cohort {a.model_version or '–'} × {a.profile or '–'} × {a.tag or 'untagged'}"
        worst = f"{a.worst_feature} PSI {a.worst_psi:.2f}" if a.worst_feature and a.worst_psi is not None else ""
        alarms.append(DriftAlarm(levels.of_drift(str(a.level)), subject, worst or str(a.level), a.device_id, a.since))
    return alarms

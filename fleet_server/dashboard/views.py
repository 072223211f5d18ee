"""What each dashboard page shows, read from the database through the API's own route functions where they exist."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from edgefleet.manifest import Manifest
from fleet_server.api.routes import cohorts, devices, rollouts
from fleet_server.dashboard import drift_view, levels
from fleet_server.db.models import Device, Event, Package, Telemetry
from fleet_server.runtime import Runtime

__all__ = [
    "Alarm",
    "ArtifactRow",
    "DevicePage",
    "ModelVersion",
    "ModelsPage",
    "Overview",
    "ProfileCount",
    "RolloutView",
    "TimelineEntry",
    "device_page",
    "device_series",
    "models_page",
    "overview",
    "rollout_views",
]

_COHORT_WINDOW_S: Final = 3600.0
_SERIES_POINTS: Final = 720  # an hour of 5 s intervals; older points are in the API
_TIMELINE_EVENTS: Final = 100


@dataclass(frozen=True, slots=True)
class Alarm:
    level: str
    subject: str
    message: str
    link: str


@dataclass(frozen=True, slots=True)
class ProfileCount:
    profile: str
    online: int
    total: int


@dataclass(frozen=True, slots=True)
class Overview:
    devices: list[devices.DeviceOut]
    online: int
    offline: int
    profiles: list[ProfileCount]
    cohorts: list[cohorts.CohortOut]
    alarms: list[Alarm]
    running_rollouts: int
    device_drift: dict[str, str]


def _open_alarms(session: Session) -> list[Alarm]:
    alarms = [
        Alarm(a.level, a.subject, a.message, f"/dashboard/devices/{a.device_id}" if a.device_id else "/dashboard")
        for a in drift_view.open_alarms(session)
    ]
    paused = [r for r in rollouts.list_rollouts(session) if r.state == "paused"]
    alarms += [
        Alarm("warning", f"rollout {r.id}", f"{r.package} paused: {r.reason}", f"/dashboard/rollouts#{r.id}")
        for r in paused
    ]
    return alarms


def overview(session: Session, runtime: Runtime) -> Overview:
    """The fleet at a glance: who is online, on which profile, which versions run where, what needs a look."""
    fleet = devices.list_devices(session, runtime)
    online = sum(d.state == "online" for d in fleet)
    totals = Counter(d.profile for d in fleet)
    up = Counter(d.profile for d in fleet if d.state == "online")
    alarms = _open_alarms(session)
    drifted = {a.link.rsplit("/", 1)[-1]: a.level for a in alarms if "/devices/" in a.link}
    return Overview(
        devices=fleet,
        online=online,
        offline=len(fleet) - online,
        profiles=[ProfileCount(p, up[p], n) for p, n in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))],
        cohorts=cohorts.list_cohorts(session, since_s=_COHORT_WINDOW_S),
        alarms=alarms,
        running_rollouts=sum(r.state == "running" for r in rollouts.list_rollouts(session)),
        device_drift=drifted,
    )


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    at: datetime
    kind: str
    level: str
    rollout_id: str | None
    package: str | None
    detail: str


@dataclass(frozen=True, slots=True)
class DevicePage:
    device: devices.DeviceOut
    level: str
    tags: list[str]
    timeline: list[TimelineEntry]
    has_telemetry: bool
    drift: drift_view.DriftView | None


def device_page(session: Session, runtime: Runtime, device_id: str) -> DevicePage:
    """One device: its record, its events newest first, and its drift; raises HTTPException 404 when unknown."""
    device = devices.get_device(device_id, session, runtime)
    events = session.scalars(
        select(Event).where(Event.device_id == device_id).order_by(Event.id.desc()).limit(_TIMELINE_EVENTS)
    ).all()
    record = session.get(Device, device_id)
    points = session.scalars(select(Telemetry.id).where(Telemetry.device_id == device_id).limit(1)).first()
    return DevicePage(
        device=device,
        level=levels.of_device(device.state),
        tags=list(record.tags or []) if record else [],
        timeline=[
            TimelineEntry(_utc(e.received_at), e.kind, levels.of_event(e.kind), e.rollout_id, e.package, e.detail)
            for e in events
        ],
        has_telemetry=points is not None,
        drift=drift_view.device_drift(session, device_id, datetime.now(UTC), runtime.settings.drift),
    )


def device_series(session: Session, device_id: str) -> dict[str, list[float | None]]:
    """Latency and throughput over time, oldest first, as columns for the chart (time in Unix seconds)."""
    rows = session.execute(
        select(
            Telemetry.received_at,
            Telemetry.interval_s,
            Telemetry.inference_count,
            Telemetry.error_count,
            Telemetry.latency_p50_ms,
            Telemetry.latency_p95_ms,
        )
        .where(Telemetry.device_id == device_id)
        .order_by(Telemetry.id.desc())
        .limit(_SERIES_POINTS)
    ).all()
    rows = sorted(rows, key=lambda r: _utc(r[0]))
    return {
        "t": [_utc(r[0]).timestamp() for r in rows],
        "p50_ms": [r[4] for r in rows],
        "p95_ms": [r[5] for r in rows],
        "per_s": [r[2] / r[1] if r[1] else None for r in rows],
        "errors_per_s": [r[3] / r[1] if r[1] else None for r in rows],
    }


@dataclass(frozen=True, slots=True)
class ArtifactRow:
    path: str
    format: str
    precision: str
    size_bytes: int
    metrics: dict[str, float]


@dataclass(frozen=True, slots=True)
class ModelVersion:
    name: str
    version: str
    sha256: str
    size_bytes: int
    key_id: str
    uploaded_at: datetime
    task: str
    labels: list[str]
    devices_running: int
    reference_metrics: dict[str, float]
    dataset: str
    artifacts: list[ArtifactRow]
    metric_names: list[str]
    latency: list[tuple[str, str, float, float]]
    compatible_profiles: list[str]
    rollouts: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ModelsPage:
    models: list[tuple[str, list[ModelVersion]]]


def _version(package: Package, running: Counter[tuple[str, str]], rollout_ids: list[str]) -> ModelVersion:
    manifest = Manifest.model_validate(package.manifest)
    metrics = manifest.metrics
    names = sorted({k for values in metrics.artifacts.values() for k in values} | set(metrics.reference))
    return ModelVersion(
        name=package.name,
        version=package.version,
        sha256=package.file_sha256,
        size_bytes=package.size_bytes,
        key_id=package.key_id,
        uploaded_at=_utc(package.uploaded_at),
        task=str(manifest.task),
        labels=manifest.labels,
        devices_running=running[(package.name, package.version)],
        reference_metrics=metrics.reference,
        dataset=metrics.dataset,
        artifacts=[
            ArtifactRow(a.path, str(a.format), str(a.precision), a.size_bytes, metrics.artifacts.get(a.path, {}))
            for a in manifest.artifacts
        ],
        metric_names=names,
        latency=[(e.profile, e.artifact, e.p50_ms, e.p95_ms) for e in manifest.latency_estimates],
        compatible_profiles=manifest.compatible_profiles,
        rollouts=rollout_ids,
    )


def models_page(session: Session, runtime: Runtime) -> ModelsPage:
    """Every model's versions, newest first, with float against quantized metrics from the export report."""
    running = Counter(
        (name, version)
        for name, version in session.execute(select(Device.model_name, Device.model_version)).all()
        if name and version
    )
    by_package: dict[str, list[str]] = {}
    for r in rollouts.list_rollouts(session):
        by_package.setdefault(r.package, []).append(r.id)
    return ModelsPage(
        [
            (name, [_version(p, running, by_package.get(f"{p.name}@{p.version}", [])) for p in packages])
            for name, packages in runtime.packages.models(session)
        ]
    )


@dataclass(frozen=True, slots=True)
class RolloutView:
    rollout: rollouts.RolloutOut
    level: str
    selected: int
    committed: int
    progress_percent: float
    gates: list[tuple[rollouts.GateOut, str, str, str, str]] = field(default_factory=list)


def rollout_views(session: Session) -> list[RolloutView]:
    """Every rollout, newest first, with its progress over the devices it selects and its gates formatted."""
    fleet = session.scalars(select(Device)).all()
    views = []
    for r in rollouts.list_rollouts(session):
        selected = sum(r.spec.selector.matches(d.id, list(d.tags or []), d.profile) for d in fleet)
        committed = r.devices.get("committed", 0)
        views.append(
            RolloutView(
                rollout=r,
                level=levels.of_rollout(r.state),
                selected=selected,
                committed=committed,
                progress_percent=100.0 * committed / selected if selected else 0.0,
                gates=[(g, levels.of_gate(g.passed, g.value), *levels.gate_figures(g)) for g in r.gates],
            )
        )
    return views


def _utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; every time the server stores is UTC
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

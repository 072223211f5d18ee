"""Prometheus gauges of the fleet read from the database at scrape time: devices online, telemetry rate,
ingest lag and rollouts by state. Read at scrape, so every server process reports the same fleet."""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from fleet_server.db.models import Device, Telemetry
from fleet_server.db.rollout_models import Rollout
from fleet_server.rollouts.spec import RolloutState

__all__ = ["FleetCollector"]

# the window the telemetry rate and the ingest lag are measured over
_WINDOW = timedelta(seconds=60)


class FleetCollector(Collector):
    def __init__(self, sessions: sessionmaker[Session], offline_after_s: float) -> None:
        self._sessions = sessions
        self._offline_after = timedelta(seconds=offline_after_s)

    def collect(self) -> Iterator[Metric]:
        now = datetime.now(UTC)
        with self._sessions() as session:
            online = session.scalar(
                select(func.count())
                .select_from(Device)
                .where(Device.state == "online", Device.last_seen >= now - self._offline_after)
            )
            total = session.scalar(select(func.count()).select_from(Device))
            recent = session.execute(
                select(Telemetry.ts, Telemetry.received_at).where(Telemetry.received_at >= now - _WINDOW)
            ).all()
            states: dict[str, int] = {
                state: count
                for state, count in session.execute(select(Rollout.state, func.count()).group_by(Rollout.state))
            }
        devices = GaugeMetricFamily("edgefleet_devices", "devices known to the server, by state", labels=["state"])
        devices.add_metric(["online"], float(online or 0))
        devices.add_metric(["offline"], float((total or 0) - (online or 0)))
        yield devices
        yield GaugeMetricFamily(
            "edgefleet_telemetry_rate", "telemetry messages stored per second, over the last minute", len(recent) / 60
        )
        lags = [(_aware(received).timestamp() - ts) for ts, received in recent]
        yield GaugeMetricFamily(
            "edgefleet_ingest_lag_seconds",
            "median time from a device's telemetry timestamp to its storage, over the last minute",
            statistics.median(lags) if lags else 0.0,
        )
        rollouts = GaugeMetricFamily("edgefleet_rollouts", "rollouts by state", labels=["state"])
        for state in RolloutState:
            rollouts.add_metric([state.value], float(states.get(state.value, 0)))
        yield rollouts


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)

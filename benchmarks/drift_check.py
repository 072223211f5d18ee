"""The server's periodic drift check on a seeded database: devices, a package with a reference, telemetry rows.

``seed_fleet`` writes what ingest and the registry would have written (rows straight into the tables, so a
benchmark of 10,000 devices does not need 10,000 MQTT clients); ``check_s`` times whole periodic checks
(bucket fill, baselines, statistics, history) on it. tests/server/test_drift.py uses the same seeding.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker

from edgefleet.manifest import FeatureReference, Histogram, ReferenceProfile
from edgefleet.sketch import CONFIDENCE_EDGES
from fleet_server.db.engine import EncodedJson
from fleet_server.db.models import Device, Package, Telemetry
from fleet_server.drift.history import record_check
from fleet_server.drift.settings import DriftSettings

__all__ = ["FleetShape", "check_s", "seed_fleet", "seed_rows"]

_BINS = 10
_CLASSES = 4


@dataclass(frozen=True, slots=True)
class FleetShape:
    devices: int
    features: int
    interval_s: float  # between one device's telemetry messages
    samples: int = 240  # values per feature per message


def _reference(shape: FleetShape) -> ReferenceProfile:
    edges = [float(e) for e in range(_BINS + 1)]
    return ReferenceProfile(
        sample_count=1000,
        features=[
            FeatureReference(name=f"f{i}", histogram=Histogram(edges=edges, counts=[100] * _BINS))
            for i in range(shape.features)
        ],
        class_counts=[250] * _CLASSES,
        confidence=Histogram(edges=list(CONFIDENCE_EDGES), counts=[0] * 8 + [500, 500]),
    )


def seed_fleet(session: Session, shape: FleetShape, now: datetime) -> None:
    """The package ``bench@1.0.0`` with a reference of ``shape.features`` features, and the devices."""
    manifest: dict[str, object] = {"name": "bench", "version": "1.0.0", "labels": [f"c{i}" for i in range(_CLASSES)]}
    manifest["reference_profile"] = _reference(shape).model_dump(mode="json")
    session.add(
        Package(
            name="bench",
            version="1.0.0",
            file_sha256="0" * 64,
            manifest_sha256="0" * 64,
            size_bytes=1,
            key_id="bench",
            manifest=manifest,
            uploaded_at=now,
        )
    )
    session.execute(
        insert(Device),
        [
            {"id": f"d{i:05d}", "profile": "rpi4", "tags": [f"line-{i % 10}"], "first_seen": now, "last_seen": now}
            for i in range(shape.devices)
        ],
    )


def seed_rows(session: Session, shape: FleetShape, since: datetime, until: datetime, seed: int = 0) -> int:
    """Every device's telemetry from ``since`` to ``until``, one message per ``interval_s``; how many rows."""
    rng = np.random.default_rng(seed)
    per_bin = shape.samples // _BINS
    count = 0
    at = since
    seq = int(since.timestamp())
    while at < until:
        rows = []
        for i in range(shape.devices):
            counts = rng.multinomial(shape.samples, [1 / _BINS] * _BINS, size=shape.features).tolist()
            payload = {
                "schema": "ef.telemetry.v1",
                "device_id": f"d{i:05d}",
                "seq": seq,
                "ts": at.timestamp(),
                "interval_s": shape.interval_s,
                "model": {"name": "bench", "version": "1.0.0", "sha256": "a" * 64, "artifact": "m.onnx"},
                "inference_count": shape.samples,
                "class_counts": [shape.samples // _CLASSES] * _CLASSES,
                "confidence_counts": [0] * 8 + [per_bin * 5, shape.samples - per_bin * 5],
                "confidence_sum": 0.9 * shape.samples,
                "sketches": {f"f{k}": c for k, c in enumerate(counts)},
            }
            rows.append(
                {
                    "device_id": f"d{i:05d}",
                    "seq": seq,
                    "ts": at.timestamp(),
                    "received_at": at,
                    "interval_s": shape.interval_s,
                    "model_version": "1.0.0",
                    "inference_count": shape.samples,
                    "error_count": 0,
                    "drop_count": 0,
                    "payload": EncodedJson(json.dumps(payload)),
                }
            )
        session.execute(insert(Telemetry), rows)
        count += len(rows)
        seq += 1
        at += timedelta(seconds=shape.interval_s)
    return count


def check_s(sessions: sessionmaker[Session], settings: DriftSettings, now: datetime) -> tuple[float, int, int]:
    """One periodic check at ``now``, timed: (seconds, devices judged, cohorts judged)."""
    start = time.perf_counter()
    with sessions() as session, session.begin():
        fleet = record_check(session, now=now, settings=settings)
    return time.perf_counter() - start, len(fleet.devices), len(fleet.cohorts)


def utc(stamp: float) -> datetime:
    return datetime.fromtimestamp(stamp, UTC)

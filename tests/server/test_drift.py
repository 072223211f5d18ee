"""Drift on a real server: sketches published over the real broker, each device against its own baseline and each
cohort against the package's reference profile; the periodic history and open alarms, the command line, the rollout
gate that pauses on an alarm; and, on the database alone, buckets that sum to what the raw rows say and history
that is deleted after its retention."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from benchmarks.drift_check import FleetShape, seed_fleet, seed_rows, utc
from edgefleet.manifest import (
    ArtifactFormat,
    DType,
    FeatureReference,
    Histogram,
    Manifest,
    Precision,
    ReferenceProfile,
    Task,
    TensorSpec,
)
from edgefleet.messages import ActiveModel, EventKind, EventV1, LatencyStats, StatusV1, TelemetryV1
from edgefleet.package import build_package, describe_artifact
from edgefleet.sensor_sim import FAULTS
from edgefleet.sketch import CONFIDENCE_EDGES
from edgefleet.topics import TopicKind, topic
from fleet_server import MqttSettings, ServerHandle, ServerSettings
from fleet_server.db import make_engine, make_session_factory, upgrade
from fleet_server.db.drift_models import DriftBaselineRow, DriftCheckRow
from fleet_server.drift.history import record_check
from fleet_server.drift.service import fleet_drift
from fleet_server.drift.settings import DriftSettings
from fleet_server.drift.stats import DriftThresholds
from fleet_server.drift.window import aware, floor_to, merge_window
from tests.factories import sensor_preprocessing
from tests.server.conftest import admin_headers
from tests.server.test_cohorts import _enroll
from tests.server.test_ingest import _device, _publish
from tests.support import free_port, wait_until

pytestmark = pytest.mark.integration

NAME = "pump-vibration"
# two features with different bin counts (5 and 10), so the server pads and unpads them correctly
VIB_EDGES = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
TEMP_EDGES = [float(t) for t in range(11)]
# per interval: counts shaped like the reference, 200 values each (the default minimum sample size)
VIB_LIKE = [40] * 5
VIB_SHIFTED = [0, 0, 0, 0, 200]
TEMP_LIKE = [20] * 10
CLASSES_LIKE = [30] * len(FAULTS)
CONFIDENCE_LIKE = [0] * 8 + [40, 160]


def _reference() -> ReferenceProfile:
    return ReferenceProfile(
        sample_count=1000,
        features=[
            FeatureReference(name="vib.rms", histogram=Histogram(edges=VIB_EDGES, counts=[200] * 5)),
            FeatureReference(name="temp.mean", histogram=Histogram(edges=TEMP_EDGES, counts=[100] * 10)),
        ],
        class_counts=[100] * len(FAULTS),
        confidence=Histogram(edges=list(CONFIDENCE_EDGES), counts=[0] * 8 + [200, 800]),
    )


def _package(folder: Path, key: Ed25519PrivateKey, version: str) -> bytes:
    folder.mkdir(parents=True)
    model = folder / "model.onnx"
    model.write_bytes(b"not really onnx " * 16)
    manifest = Manifest(
        name=NAME,
        version=version,
        task=Task.CLASSIFICATION,
        created_at="2026-11-24T00:00:00Z",
        inputs=[TensorSpec(name="x", shape=[None, 4, 256], dtype=DType.FLOAT32, layout="NCW")],
        outputs=[TensorSpec(name="logits", shape=[None, len(FAULTS)], dtype=DType.FLOAT32)],
        labels=list(FAULTS),
        preprocessing=sensor_preprocessing(),
        artifacts=[
            describe_artifact(
                "model.onnx", model, format=ArtifactFormat.ONNX, precision=Precision.FP32, runtime="onnxruntime>=1.17"
            )
        ],
        reference_profile=_reference(),
    )
    return build_package(manifest, {"model.onnx": model}, key, folder / f"{NAME}-{version}.efpkg").read_bytes()


@pytest.fixture
def drift_server(
    tmp_path: Path, database_url: str, signing_key: tuple[Ed25519PrivateKey, Path]
) -> Iterator[ServerHandle]:
    """A real server trusting ``signing_key``, checking drift every 0.3 s (1 s buckets, a device's baseline its
    first second) and ticking rollouts every 0.2 s."""
    settings = ServerSettings(
        data_dir=tmp_path / "server",
        database_url=database_url,
        http_port=free_port(),
        mqtt=MqttSettings(port=free_port()),
        trusted_keys=[signing_key[1]],
        rollout_tick_s=0.2,
        # a baseline needs more samples than one interval holds (200), so a device's two baseline intervals are
        # both in it even when a bucket boundary falls between them (else the second counted as live)
        drift=DriftSettings(
            check_interval_s=0.3, bucket_s=1.0, baseline_s=1.0, thresholds=DriftThresholds(min_samples=300)
        ),
    )
    handle = ServerHandle(settings)
    handle.start()
    yield handle
    handle.stop()


@pytest.fixture
def http(drift_server: ServerHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=drift_server.base_url, headers=admin_headers(drift_server), timeout=30) as client:
        yield client


def _upload(http: httpx.Client, package: bytes) -> None:
    response = http.post("/api/v1/models", content=package, headers={"Content-Type": "application/octet-stream"})
    assert response.status_code in (200, 201), response.text


def _model(version: str) -> ActiveModel:
    return ActiveModel(name=NAME, version=version, sha256="a" * 64, artifact="model.onnx")


def _telemetry(
    device_id: str,
    seq: int,
    version: str,
    vib: list[int],
    *,
    temp: list[int] = TEMP_LIKE,
    classes: list[int] = CLASSES_LIKE,
    confidence: list[int] = CONFIDENCE_LIKE,
) -> str:
    return TelemetryV1(
        device_id=device_id,
        seq=seq,
        ts=time.time(),
        interval_s=10,
        model=_model(version),
        inference_count=200,
        latency=LatencyStats(p50_ms=1, p95_ms=2, max_ms=3),
        sketches={"vib.rms": vib, "temp.mean": temp},
        class_counts=classes,
        confidence_counts=confidence,
    ).model_dump_json()


def _send(
    client: mqtt.Client, device_id: str, version: str, vib: list[int], intervals: int, first_seq: int = 0
) -> None:
    for seq in range(first_seq, first_seq + intervals):
        _publish(client, topic(device_id, TopicKind.TELEMETRY), _telemetry(device_id, seq, version, vib))


def _device_drift(http: httpx.Client, device_id: str) -> dict[str, Any]:
    response = http.get(f"/api/v1/drift/devices/{device_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _online_on(client: mqtt.Client, device_id: str, version: str) -> None:
    """The device's retained status: online, running ``version``."""
    status = StatusV1(
        device_id=device_id,
        seq=1,
        ts=time.time(),
        state="online",
        agent_version="0.1.0",
        profile="rpi4",
        model=_model(version),
    )
    _publish(client, topic(device_id, TopicKind.STATUS), status.model_dump_json(), retain=True)


def _edgefleet(server: ServerHandle, *args: str) -> subprocess.CompletedProcess[str]:
    token = admin_headers(server)["Authorization"].removeprefix("Bearer ")
    return subprocess.run(
        [Path(sys.executable).parent / "edgefleet", "drift", *args, "--server", server.base_url, "--token", token],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_drift_per_device_and_cohort_with_history_alarms_and_the_command_line(
    drift_server: ServerHandle, http: httpx.Client, signing_key: tuple[Ed25519PrivateKey, Path], tmp_path: Path
) -> None:
    _upload(http, _package(tmp_path / "v1", signing_key[0], "1.0.0"))
    _enroll(http, ["line-1"], ["d-ok-1", "d-ok-2"])
    _enroll(http, ["line-2"], ["d-shift"])
    _enroll(http, ["line-3"], ["d-few", "d-unknown"])
    clients = {d: _device(drift_server, d) for d in ("d-ok-1", "d-ok-2", "d-shift", "d-few", "d-unknown")}
    # first each device's baseline (like the reference), then, once the server has closed it, the live intervals
    _send(clients["d-ok-1"], "d-ok-1", "1.0.0", VIB_LIKE, 2)
    _send(clients["d-ok-2"], "d-ok-2", "1.0.0", VIB_LIKE, 2)
    _send(clients["d-shift"], "d-shift", "1.0.0", VIB_LIKE, 2)
    _publish(
        clients["d-few"],
        topic("d-few", TopicKind.TELEMETRY),
        _telemetry("d-few", 0, "1.0.0", [2] * 5, temp=[1] * 10, classes=[], confidence=[0] * 9 + [10]),
    )
    _send(clients["d-unknown"], "d-unknown", "9.9.9", VIB_LIKE, 1)
    collecting = wait_until(lambda: (d := _device_drift(http, "d-shift"))["intervals"] and d)
    assert (collecting["level"], collecting["reference"]) == ("not-enough-data", "package")
    assert "collecting this device's baseline" in collecting["note"]
    wait_until(
        lambda: all(_device_drift(http, d)["reference"] == "device-baseline" for d in ("d-ok-1", "d-shift")),
        timeout_s=30,
    )
    _send(clients["d-ok-1"], "d-ok-1", "1.0.0", VIB_LIKE, 2, first_seq=2)
    _send(clients["d-shift"], "d-shift", "1.0.0", VIB_SHIFTED, 2, first_seq=2)
    wait_until(
        lambda: _device_drift(http, "d-shift")["level"] == "alarm" and _device_drift(http, "d-ok-1")["intervals"] >= 2
    )

    ok = _device_drift(http, "d-ok-1")
    assert (ok["level"], ok["has_reference"], ok["reference"]) == ("ok", True, "device-baseline")
    assert ok["baseline_start"] < ok["baseline_end"]
    vib = {f["name"]: f for f in ok["features"]}["vib.rms"]
    assert vib["edges"] == VIB_EDGES
    # against its own baseline: both sides are whole intervals of VIB_LIKE, 40 a bin each
    assert len(set(vib["reference_counts"])) == 1
    assert vib["reference_counts"][0] % 40 == 0
    assert vib["live_counts"] == [40 * ok["intervals"]] * 5
    assert ok["classes"]["level"] == "ok"
    assert ok["classes"]["labels"] == list(FAULTS)
    assert ok["confidence"]["live_counts"] == [ok["intervals"] * c for c in CONFIDENCE_LIKE]
    assert ok["estimated_accuracy"] == pytest.approx((0.85 * 40 + 0.95 * 160) / 200)

    shifted = _device_drift(http, "d-shift")
    assert (shifted["level"], shifted["worst_feature"], shifted["reference"]) == ("alarm", "vib.rms", "device-baseline")
    levels = {f["name"]: f["level"] for f in shifted["features"]}
    assert levels == {"vib.rms": "alarm", "temp.mean": "ok"}

    few = _device_drift(http, "d-few")
    assert (few["level"], few["reference"]) == ("not-enough-data", "package")
    assert "collecting this device's baseline" in few["note"]
    # its live histograms are drawn over the package's reference meanwhile, without statistics
    assert {f["name"] for f in few["features"]} == {"vib.rms", "temp.mean"}
    assert all((f["level"], f["psi"], f["ks"]) == ("not-enough-data", None, None) for f in few["features"])

    unknown = _device_drift(http, "d-unknown")
    assert (unknown["level"], unknown["has_reference"], unknown["features"]) == ("not-enough-data", False, [])
    assert "no reference" in unknown["note"]
    assert f"{NAME}@9.9.9" in unknown["note"]
    assert http.get("/api/v1/drift/devices/nobody").status_code == 404

    cohorts = {(c["model_version"], c["tag"]): c for c in http.get("/api/v1/drift/cohorts").json()}
    line1 = cohorts[("1.0.0", "line-1")]
    # every device of line 1 has its baseline: the cohort's windows after them against them, scaled to the window
    assert (line1["devices"], line1["device_ids"], line1["reference"]) == (2, ["d-ok-1", "d-ok-2"], "device-baselines")
    assert (line1["intervals"], line1["level"]) == (2, "ok")
    vib1 = {f["name"]: f for f in line1["features"]}["vib.rms"]
    assert (vib1["reference_counts"], vib1["live_counts"]) == ([80] * 5, [80] * 5)
    line3 = cohorts[("1.0.0", "line-3")]
    assert (line3["level"], line3["sample_count"]) == ("not-enough-data", 10)
    # one device, judged against the package's reference: too few machines to stand for the training data's many
    assert "fewer than the 10 a cohort needs" in line3["note"]
    assert cohorts[("1.0.0", "line-2")]["level"] == "alarm"
    assert not cohorts[("9.9.9", "line-3")]["has_reference"]

    def shifted_alarm_in_history() -> list[dict[str, Any]] | None:
        rows = http.get("/api/v1/drift/devices/d-shift/history").json()
        return rows if rows and rows[0]["level"] == "alarm" else None

    rows = wait_until(shifted_alarm_in_history)
    assert rows is not None
    assert rows[0]["worst_feature"] == "vib.rms"
    cohort_rows = http.get("/api/v1/drift/history", params={"scope": "cohort", "tag": "line-1"}).json()
    assert cohort_rows
    # before its devices' baselines, two devices are too few to judge against the package; after them, ok
    assert all(r["level"] in ("ok", "not-enough-data") and r["device_id"] is None for r in cohort_rows)
    assert cohort_rows[0]["level"] == "ok"
    alarms = http.get("/api/v1/drift/alarms").json()
    assert {(a["scope"], a["device_id"] or a["tag"]) for a in alarms} == {("device", "d-shift"), ("cohort", "line-2")}
    assert all(a["since"] <= a["checked_at"] for a in alarms)

    device_cli = _edgefleet(drift_server, "device", "d-shift")
    assert device_cli.returncode == 1, device_cli.stderr
    assert "vib.rms" in device_cli.stdout
    assert "alarm" in device_cli.stdout
    cohorts_cli = _edgefleet(drift_server, "cohorts", "--json")
    assert cohorts_cli.returncode == 1, cohorts_cli.stderr
    assert {c["tag"] for c in json.loads(cohorts_cli.stdout)} == {"line-1", "line-2", "line-3"}
    missing = _edgefleet(drift_server, "device", "nobody")
    assert missing.returncode == 2
    assert "Traceback" not in missing.stderr
    for client in clients.values():
        client.disconnect()
        client.loop_stop()


def _rollout(http: httpx.Client, rollout_id: str) -> dict[str, Any]:
    body: dict[str, Any] = http.get(f"/api/v1/rollouts/{rollout_id}").json()
    return body


def test_a_drift_alarm_on_the_updated_devices_fails_their_wave_and_pauses_the_rollout(
    drift_server: ServerHandle, http: httpx.Client, signing_key: tuple[Ed25519PrivateKey, Path], tmp_path: Path
) -> None:
    _upload(http, _package(tmp_path / "v1", signing_key[0], "1.0.0"))
    _upload(http, _package(tmp_path / "v2", signing_key[0], "2.0.0"))
    # as many devices as a cohort needs to be judged against the package's reference (min_cohort_devices)
    devices = [f"g-{i}" for i in range(DriftThresholds().min_cohort_devices)]
    _enroll(http, ["line-1"], devices)
    clients = {d: _device(drift_server, d) for d in devices}
    for device_id, client in clients.items():
        _online_on(client, device_id, "1.0.0")
    spec = {
        "package": f"{NAME}@2.0.0",
        "selector": {"device_ids": devices},
        "waves": [{"percent": 100}],
        "gates": {"bake_s": 0.5, "min_reported": 1.0, "min_success": 1.0},
    }
    created = http.post("/api/v1/rollouts", json=spec)
    assert created.status_code == 201, created.text
    rollout_id = created.json()["id"]
    wait_until(lambda: _rollout(http, rollout_id)["devices"] == {"assigned": len(devices)})
    # the updated devices' telemetry on 2.0.0 is stored before they say they committed, so the gate has it to judge
    for device_id, client in clients.items():
        _send(client, device_id, "2.0.0", VIB_SHIFTED, 1)
    # the devices are fresh on 2.0.0, so they are collecting their own baselines: their cohort's alarm is what the
    # gate sees
    wait_until(lambda: any(c["level"] == "alarm" for c in http.get("/api/v1/drift/cohorts").json()))
    assert _device_drift(http, "g-0")["level"] == "not-enough-data"
    for device_id, client in clients.items():
        committed = EventV1(
            device_id=device_id,
            seq=0,
            ts=time.time(),
            kind=EventKind.COMMITTED,
            rollout_id=rollout_id,
            package=f"{NAME}@2.0.0",
        )
        _publish(client, topic(device_id, TopicKind.EVENTS), committed.model_dump_json())

    def settled() -> dict[str, Any] | None:
        rollout = _rollout(http, rollout_id)
        return rollout if rollout["state"] != "running" else None

    paused = wait_until(settled, timeout_s=30)
    assert paused is not None
    assert paused["state"] == "paused", paused["reason"]
    assert "drift alarm on cohort 2.0.0/rpi4/line-1 (alarm: vib.rms PSI" in paused["reason"]
    assert "device g-0" not in paused["reason"]
    assert [a["action"] for a in paused["audit"]] == ["created", "paused"]
    assert "drift alarm" in paused["audit"][-1]["detail"]
    # the rollout's page shows the drift gate as the latest periodic check saw it
    gate = wait_until(
        lambda: [g for g in _rollout(http, rollout_id)["gates"] if g["name"] == "drift" and not g["passed"]]
    )
    assert "cohort rpi4/line-1" in gate[0]["detail"]
    for client in clients.values():
        client.disconnect()
        client.loop_stop()


def test_a_canary_too_small_to_judge_against_the_package_passes_the_drift_gate_and_says_so(
    drift_server: ServerHandle, http: httpx.Client, signing_key: tuple[Ed25519PrivateKey, Path], tmp_path: Path
) -> None:
    _upload(http, _package(tmp_path / "v1", signing_key[0], "1.0.0"))
    _upload(http, _package(tmp_path / "v2", signing_key[0], "2.0.0"))
    _enroll(http, ["line-9"], ["solo"])
    client = _device(drift_server, "solo")
    _online_on(client, "solo", "1.0.0")
    spec = {
        "package": f"{NAME}@2.0.0",
        "selector": {"device_ids": ["solo"]},
        "waves": [{"devices": 1}],
        "gates": {"bake_s": 0.5, "min_reported": 1.0, "min_success": 1.0},
    }
    created = http.post("/api/v1/rollouts", json=spec)
    assert created.status_code == 201, created.text
    rollout_id = created.json()["id"]
    wait_until(lambda: _rollout(http, rollout_id)["devices"] == {"assigned": 1})
    # what made a lone canary's cohort alarm against the package before: all of it in the reference's top bin
    _send(client, "solo", "2.0.0", VIB_SHIFTED, 1)
    wait_until(lambda: any(c["model_version"] == "2.0.0" for c in http.get("/api/v1/drift/cohorts").json()))
    committed = EventV1(
        device_id="solo",
        seq=0,
        ts=time.time(),
        kind=EventKind.COMMITTED,
        rollout_id=rollout_id,
        package=f"{NAME}@2.0.0",
    )
    _publish(client, topic("solo", TopicKind.EVENTS), committed.model_dump_json())
    done = wait_until(lambda: (r := _rollout(http, rollout_id))["state"] != "running" and r, timeout_s=30)
    assert done["state"] == "completed", done["reason"]
    assert "on their cohorts (1 of 1 without enough data or devices to judge)" in done["audit"][-1]["detail"]
    client.disconnect()
    client.loop_stop()


@pytest.fixture
def drift_db(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(database_url)
    upgrade(engine)
    yield make_session_factory(engine)
    engine.dispose()


def test_bucketed_windows_equal_raw_rows_and_old_history_is_deleted(drift_db: sessionmaker[Session]) -> None:
    shape = FleetShape(devices=3, features=2, interval_s=60.0)
    now = utc(1_800_000_000.0 + 30)
    settings = DriftSettings(bucket_s=300.0, baseline_s=600.0, history_retention_s=86400.0)
    with drift_db() as session, session.begin():
        seed_fleet(session, shape, now)
        seed_rows(session, shape, now - timedelta(hours=2), now)
        session.add(
            DriftCheckRow(
                at=now - timedelta(days=2), scope="device", device_id="d00000", level="ok", sample_count=1, window_s=1
            )
        )
    with drift_db() as session:
        # before any baseline, its three-device cohorts judged against the package, as small ones are not by default
        rule = DriftThresholds(min_cohort_devices=1)
        raw = fleet_drift(session, since=now - timedelta(hours=1), until=now, thresholds=rule)
    with drift_db() as session, session.begin():
        record_check(session, now=now, settings=settings)
    with drift_db() as session, session.begin():
        again = record_check(session, now=now, settings=settings)  # a second fill of the same span changes nothing
    with drift_db() as session:
        history = session.scalars(select(DriftCheckRow)).all()
        baselines = session.scalars(select(DriftBaselineRow)).all()
        bucketed = merge_window(session, now - timedelta(hours=1), now)
    assert history  # the check's own rows
    assert all(aware(row.at) >= now - timedelta(days=1) for row in history)
    assert len(baselines) == shape.devices
    assert all(aware(b.end) - aware(b.start) >= timedelta(seconds=600) for b in baselines)
    # the window starts on a bucket boundary, so it holds whole buckets: all 60 intervals of the last hour
    assert bucketed.since == floor_to(now - timedelta(hours=1), 300.0)
    assert {s.device_id: s.all.intervals for s in bucketed.sketches} == {f"d{i:05d}": 60 for i in range(3)}
    with drift_db() as session:
        exact = merge_window(session, bucketed.since, now)
    assert exact.since == bucketed.since
    by_device = {s.device_id: s.all.counts for s in exact.sketches}
    for sketch in bucketed.sketches:
        assert sketch.all.counts is not None
        assert sketch.all.counts.tolist() == by_device[sketch.device_id].tolist()  # type: ignore[union-attr]
    assert [c.summary.level for c in again.cohorts] == [c.summary.level for c in raw.cohorts]
    assert {d.summary.reference for d in again.devices} == {"device-baseline"}

"""Secrets: private keys and token files only their owner reads, tokens and MQTT passwords only hashed in the
database, and no secret in any log line of a full run (enrollment, sign-in, upload, rollout over TLS)."""

from __future__ import annotations

import logging
import sqlite3
import stat
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from edge_agent import AgentSettings, BrokerSettings, SimulatedSourceSettings
from edge_agent.settings import UpdateSettings
from edgefleet.signing import generate_keys
from fleet_server.auth import ensure_admin_token
from fleet_server.broker_auth import MosquittoAccounts
from fleet_server.db import make_engine, make_session_factory, upgrade
from fleet_server.settings import MosquittoSettings
from tests.agent.tiny import build_tiny_package
from tests.agent.update_support import serving
from tests.security.production import production_fleet
from tests.support import free_port, wait_until

pytestmark = pytest.mark.integration

FAST_GATES = {"bake_s": 0.5, "min_reported": 1.0, "min_success": 1.0, "max_latency_ratio": 50.0, "drift_fails_at": None}


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_private_keys_and_secret_files_are_owner_only(tmp_path: Path) -> None:
    private_key, public_key = generate_keys(tmp_path / "keys")
    assert _mode(private_key) == 0o600
    assert _mode(public_key) & 0o077 != 0  # the public half is meant to be shared: proves the check can fail
    engine = make_engine(f"sqlite:///{tmp_path / 'fleet.db'}")
    upgrade(engine)
    assert ensure_admin_token(make_session_factory(engine), tmp_path / "admin.token", datetime.now(UTC))
    engine.dispose()
    assert _mode(tmp_path / "admin.token") == 0o600
    folder = tmp_path / "mosquitto"
    tls, _logins = MosquittoAccounts(MosquittoSettings(enabled=True), folder, free_port()).prepare()
    for secret in (tls.ca_key, tls.key, folder / "server-logins.json", folder / "passwd", folder / "acl"):
        assert _mode(secret) == 0o600, secret
    assert _mode(tls.ca_cert) == 0o644  # devices are handed the CA certificate


def _database_text(db: Path) -> str:
    """Every value of every table, and the raw bytes of the database and its write-ahead log."""
    with sqlite3.connect(db) as connection:
        tables = [name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        rows = [repr(row) for table in tables for row in connection.execute(f'SELECT * FROM "{table}"')]
    raw = b"".join(p.read_bytes() for p in db.parent.glob(f"{db.name}*"))
    return "\n".join(rows) + raw.decode("latin-1")


def test_a_full_run_keeps_every_secret_out_of_logs_and_database(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    v1 = build_tiny_package(tmp_path / "v1")
    v2 = build_tiny_package(tmp_path / "v2", version="2.0.0", seed=2, keys=v1.public_key.parent)
    secrets: dict[str, str] = {}
    with production_fleet(tmp_path / "fleet", [v1.public_key]) as production:
        http = production.http
        secrets["admin token"] = http.headers["Authorization"].removeprefix("Bearer ")
        secrets |= {f"server login {user}": password for user, password in production.server_logins.items()}
        provisioning = http.post("/api/v1/provisioning-tokens", json={"uses": 1, "tags": ["sec"]}).json()["token"]
        secrets["provisioning token"] = provisioning
        body = {"provisioning_token": provisioning, "device_id": "sec-1", "profile": "rpi4b"}
        enrolled = http.post("/api/v1/devices/enroll", json=body).json()
        secrets["device token"], secrets["mqtt password"] = enrolled["token"], enrolled["mqtt"]["password"]
        viewer = http.post("/api/v1/tokens", json={"name": "alice", "role": "viewer"}).json()["token"]
        secrets["viewer token"] = viewer
        form = {"token": viewer, "next": "/dashboard"}
        signed_in = httpx.post(f"{production.server.base_url}/dashboard/login", data=form)
        assert signed_in.status_code == 303, signed_in.text
        for package in (v1, v2):
            uploaded = http.post(
                "/api/v1/models",
                content=package.path.read_bytes(),
                headers={"Content-Type": "application/octet-stream"},
            )
            assert uploaded.status_code in (200, 201), uploaded.text
        agent = AgentSettings(
            device_id="sec-1",
            profile="rpi4b",
            data_dir=tmp_path / "agent",
            broker=BrokerSettings(
                port=production.tls_port,
                username="sec-1",
                password=secrets["mqtt password"],
                tls=True,
                ca_file=production.ca_file,
            ),
            package=v1.path,
            trusted_keys=[v1.public_key],
            telemetry_interval_s=0.2,
            source=SimulatedSourceSettings(windows_per_s=100),
            updates=UpdateSettings(
                health_window_s=0.5, health_min_inferences=5, max_latency_ratio=50, auth_token=secrets["device token"]
            ),
        )
        with serving(agent):
            wait_until(lambda: any(d["model_version"] for d in http.get("/api/v1/devices").json()), timeout_s=20)
            rollout = http.post("/api/v1/rollouts", json={"package": "tiny-pump@2.0.0", "gates": FAST_GATES})
            assert rollout.status_code == 201, rollout.text
            state = lambda: http.get(f"/api/v1/rollouts/{rollout.json()['id']}").json()["state"]  # noqa: E731
            assert (
                wait_until(lambda: state() in ("completed", "paused", "aborted") and state(), timeout_s=40)
                == "completed"
            )
        database = _database_text(production.server.settings.data_dir / "fleet.db")
        broker_log = production.broker_log.read_text()
    # the test's own HTTP client (httpcore at DEBUG, on this thread) logs response headers, such as the sign-in's
    # Set-Cookie: that is this test talking, not the server or the agent
    ours = [r for r in caplog.records if r.name.startswith(("httpcore", "httpx")) and r.threadName == "MainThread"]
    lines = [f"{record.getMessage()} {record.__dict__!r}" for record in caplog.records if record not in ours]
    events = {record.getMessage() for record in caplog.records}
    # the capture saw the whole run, or finding nothing in it would prove nothing
    assert {"auth.enrolled", "commands.sent", "broker_auth.logins_written"} <= events, sorted(events)[:50]
    assert len(secrets) == 7
    for name, secret in secrets.items():
        assert [line for line in lines if secret in line] == [], f"the {name} is in a log line"
        assert secret not in broker_log, f"the {name} is in Mosquitto's log"
        assert secret not in database, f"the {name} is stored in clear"

"""A soak: the emulated fleet under a fault every ``fault_every_s``, and what must hold afterwards.

Every part is real: a Mosquitto (devices.broker, restartable, persistence on) in production broker mode (the
server writes its logins, ACL and TLS listener; devices connect over TLS with the logins enrollment gave them),
the fleet server as a process of its own on SQLite against that Mosquitto (so it can be killed with SIGKILL, as the OOM killer or a power cut
would), and emulated devices (devices.Fleet) that enroll themselves and serve the package's first version. The
faults take turns:

- ``broker-restart``: Mosquitto stopped and started again on its port a few seconds later;
- ``server-kill``: the server killed with SIGKILL and started again;
- ``cohort-cut``: a cohort (the devices that run as their own processes, inside a network namespace of their own,
  devices.netns) cut off the network for ``cut_s``, longer than their MQTT keepalive, so their clients notice;
- ``update-kill``: a rollout of the next version starts, and the devices that run as their own processes are
  killed with SIGKILL in the middle of their update (the first time at a fixed step, by a failpoint, later at a
  random moment of it) and started again, as systemd would.

Afterwards, once the last rollout has ended and the devices have sent what they queued, the fleet is stopped and
``SoakReport`` counts: telemetry by ``seq`` per device in the server's database against what each device numbered
(``missing``), devices not online on a version that was rolled out (``bricked``), rollouts neither completed
nor aborted (``unfinished``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx
import numpy as np

from devices.broker import Mosquitto
from devices.emulator import Fleet
from devices.netns import CohortNetwork
from edge_agent.sequence import SEQ_FILE, spent
from edge_agent.settings import EnrollmentSettings, UpdateSettings
from edgefleet.errors import AgentError, ConfigError
from edgefleet.ports import free_port
from edgefleet.topics import TopicKind

__all__ = ["FAULTS", "SoakPlan", "SoakReport", "soak"]

log = logging.getLogger(__name__)

FAULTS: Final = ("broker-restart", "server-kill", "cohort-cut", "update-kill")
# the devices in turn: one in four runs as its own process, in the cohort's network namespace, and is killed
_INJECTIONS: Final = ("none", "none", "crash-mid-update", "none")
_NEVER_S: Final = 10.0 * 365 * 86400  # the emulator's own fault schedule stays off: the soak injects the faults
_KEEPALIVE_S: Final = 5  # the devices' MQTT keepalive: a cut longer than this is noticed and queued for
_TERMINAL: Final = ("completed", "aborted")


@dataclass(frozen=True, slots=True)
class SoakPlan:
    duration_s: float = 180.0
    fault_every_s: float = 45.0
    devices: int = 8
    telemetry_interval_s: float = 2.0
    outage_s: float = 5.0  # how long the broker is down, the server dead
    cut_s: float = 20.0  # how long the cohort is cut off
    settle_s: float = 120.0  # after the faults, at most this long for rollouts to end and outboxes to drain


@dataclass(frozen=True, slots=True)
class SoakReport:
    faults: list[tuple[float, str]]  # seconds from the start, fault
    devices: int
    numbered: int  # telemetry messages the devices numbered
    stored: int  # telemetry messages the server stored (each seq once)
    missing: dict[str, list[int]]  # per device, the seqs it numbered that never reached the database
    bricked: list[str]  # devices not online on a version that was rolled out, with what they show
    rollouts: dict[str, str]  # id: final state
    unfinished: list[str]
    agent_restarts: int
    cohort: int  # devices in the cohort's network namespace
    cohort_offline_in_cut: int  # of those, how many the server saw offline at the end of a cut

    @property
    def missing_count(self) -> int:
        return sum(len(seqs) for seqs in self.missing.values())


@dataclass
class _Server:
    """The fleet server in its own process, started again after a kill with the same settings."""

    data_dir: Path
    host: str
    http_port: int
    mqtt_port: int
    trusted_key: Path
    mosquitto: dict[str, object]  # the server's production broker settings
    process: subprocess.Popen[bytes] | None = None
    kills: int = 0
    _log: Path = field(init=False)

    def __post_init__(self) -> None:
        self._log = self.data_dir.parent / "server.log"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    def start(self, *, wait: bool = True) -> None:
        env = os.environ | {
            "EDGEFLEET_SERVER_DATA_DIR": str(self.data_dir),
            "EDGEFLEET_SERVER_HTTP_HOST": self.host,
            "EDGEFLEET_SERVER_HTTP_PORT": str(self.http_port),
            "EDGEFLEET_SERVER_MQTT__EMBEDDED_BROKER": "false",
            "EDGEFLEET_SERVER_MQTT__HOST": "127.0.0.1",
            "EDGEFLEET_SERVER_MOSQUITTO": json.dumps(self.mosquitto),
            "EDGEFLEET_SERVER_MQTT__PORT": str(self.mqtt_port),
            "EDGEFLEET_SERVER_TRUSTED_KEYS": json.dumps([str(self.trusted_key)]),
            "EDGEFLEET_SERVER_ROLLOUT_TICK_S": "0.5",
        }
        with self._log.open("ab") as out:
            self.process = subprocess.Popen([Path(sys.executable).parent / "edgefleet", "server"], stderr=out, env=env)
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        """Wait until the server answers healthy (database and broker reached)."""
        _wait(lambda: _answers(self.url), 60, f"the fleet server did not answer (its log: {self._log})")

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(15)
            self.kills += 1

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def admin(self) -> httpx.Client:
        token = (self.data_dir / "admin.token").read_text().strip()
        return httpx.Client(base_url=self.url, timeout=15, headers={"Authorization": f"Bearer {token}"})


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _wait(condition: Callable[[], bool], timeout_s: float, failure: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise ConfigError(failure, hint="see the logs in the soak's folder")
        time.sleep(0.2)


def _call(server: _Server, method: str, path: str, **kwargs: Any) -> httpx.Response | None:
    """One API call; None while the server is down (killed by the soak a moment ago)."""
    try:
        with server.admin() as http:
            return http.request(method, path, **kwargs)
    except httpx.HTTPError:
        return None


@dataclass
class _Parts:
    network: CohortNetwork
    broker: Mosquitto
    server: _Server
    fleet: Fleet | None = None
    fleet_stopped: bool = False

    def stop_fleet(self) -> None:
        """Stop every device (each sends its last interval and says offline), once."""
        if self.fleet is not None and not self.fleet_stopped:
            self.fleet_stopped = True
            self.fleet.stop()


@contextlib.contextmanager
def _running(root: Path, plan: SoakPlan, packages: list[Path], key: Path) -> Iterator[_Parts]:
    network = CohortNetwork()
    network.create()
    # production broker mode: the server writes the logins, the ACL and the TLS listener the devices reach across
    # the namespace's link; its own clients use the local listener
    broker_files, local_port, tls_port = root / "broker-files", free_port(), free_port()
    mosquitto = {
        "enabled": True,
        "config_dir": str(broker_files),
        "tls_port": tls_port,
        "tls_bind": network.host_ip,
        "tls_hostnames": [network.host_ip],
        "pid_file": str(root / "broker" / "mosquitto.pid"),
    }
    broker = Mosquitto(root / "broker", port=local_port, production=broker_files)
    server = _Server(root / "server", network.host_ip, free_port(), broker.port, key, mosquitto)
    server.data_dir.mkdir(parents=True, exist_ok=True)
    parts = _Parts(network, broker, server)
    try:
        # as docs/production.md says: the server writes the broker's files at its first start, then the broker
        # starts on them, and the server's MQTT clients, retrying until then, connect
        server.start(wait=False)
        _wait(lambda: (broker_files / "edgefleet.conf").is_file(), 60, "the server wrote no broker files")
        broker.start()
        server.wait_ready()
        with server.admin() as http:
            for package in packages:
                uploaded = http.post(
                    "/api/v1/models", content=package.read_bytes(), headers={"Content-Type": "application/octet-stream"}
                )
                uploaded.raise_for_status()
            provisioning = http.post("/api/v1/provisioning-tokens", json={"uses": plan.devices, "tags": ["soak"]})
            provisioning.raise_for_status()
        fleet = parts.fleet = Fleet(
            devices=plan.devices,
            package=packages[0],
            trusted_keys=[key],
            broker_host=network.host_ip,
            broker_port=tls_port,
            broker_ca_file=broker_files / "ca.pem",
            data_dir=root / "devices",
            telemetry_interval_s=plan.telemetry_interval_s,
            windows_per_s=2.0,
            injections=_INJECTIONS,
            inject_after_s=_NEVER_S,
            fault_s=plan.outage_s,
            broker=broker,
            updates=UpdateSettings(health_window_s=4, health_min_inferences=4, max_latency_ratio=20.0),
            enrollment=EnrollmentSettings(server_url=server.url, provisioning_token=provisioning.json()["token"]),
            keepalive_s=_KEEPALIVE_S,
            cohort_network=network,
        )
        fleet.start()
        yield parts
    finally:
        parts.stop_fleet()
        server.stop()
        broker.stop()
        network.remove()


def _devices(server: _Server) -> list[dict[str, Any]]:
    answer = _call(server, "GET", "/api/v1/devices")
    return answer.json() if answer is not None and answer.status_code == 200 else []


def _rollouts(server: _Server) -> dict[str, str]:
    answer = _call(server, "GET", "/api/v1/rollouts")
    if answer is None or answer.status_code != 200:
        return {}
    return {r["id"]: r["state"] for r in answer.json()}


class _Faults:
    """The faults in turn, each one ``outage_s`` long where it has a length."""

    def __init__(self, plan: SoakPlan, parts: _Parts, model: str, versions: list[str]) -> None:
        assert parts.fleet is not None  # started by _running
        self._plan, self._broker, self._server, self._fleet = plan, parts.broker, parts.server, parts.fleet
        self._network = parts.network
        self.cut_offline = 0  # the most cohort devices the server saw offline at the end of a cut
        self._model, self._versions = model, versions
        self._next_version = 1
        self._rng = np.random.default_rng(0)

    def inject(self, name: str) -> None:
        log.warning("soak.fault", extra={"fault": name})
        if name == "broker-restart":
            self._broker.restart(self._plan.outage_s)
        elif name == "server-kill":
            self._server.kill()
            time.sleep(self._plan.outage_s)
            self._server.start()
        elif name == "cohort-cut":
            self._network.cut()
            time.sleep(self._plan.cut_s)
            # the broker has published the cut devices' last will by now (1.5 keepalives without a word)
            cohort = set(self._fleet.processes)
            offline = {d["id"] for d in _devices(self._server) if d["state"] == "offline"}
            self.cut_offline = max(self.cut_offline, len(cohort & offline))
            self._network.restore()
        elif name == "update-kill":
            self._update_and_kill()

    def _update_and_kill(self) -> None:
        if self._next_version >= len(self._versions) or any(
            s not in _TERMINAL for s in _rollouts(self._server).values()
        ):
            return  # every version is out, or the last rollout still runs: no second update on top of it
        version = self._versions[self._next_version]
        self._next_version += 1
        spec = {
            "package": f"{self._model}@{version}",
            "waves": [{"percent": 50}, {"percent": 100}],
            "gates": {"bake_s": 2, "min_reported": 0.5, "min_success": 0.5, "wave_timeout_s": 90},
            "on_failure": "abort",
            "download_deadline_s": 60,
        }
        created = _call(self._server, "POST", "/api/v1/rollouts", json=spec)
        if created is None or created.status_code != 201:
            log.warning("soak.rollout_refused", extra={"answer": None if created is None else created.text})
            return
        # the processes' first update dies at its failpoint; later ones are killed at a random moment of it
        time.sleep(float(self._rng.uniform(0.5, 3.0)))
        for process in self._fleet.processes.values():
            if process.restarts > 0:
                process.kill()

    @property
    def rolled(self) -> int:
        """Versions installed or rolled out so far: the first, and one per rollout started."""
        return self._next_version


def _numbered(device_dir: Path) -> int:
    """How many telemetry seqs a device has spent (each one stored in its outbox, or sent when it could not be)."""
    try:
        return spent(device_dir, TopicKind.TELEMETRY)
    except AgentError:
        return 0


def _missing(numbered: dict[str, int], stored: dict[str, set[int]]) -> dict[str, list[int]]:
    """Per device, the seqs it numbered that are not in the database."""
    gaps = {device: sorted(set(range(count)) - stored.get(device, set())) for device, count in numbered.items()}
    return {device: seqs for device, seqs in gaps.items() if seqs}


def _online(server: _Server) -> int:
    return sum(1 for d in _devices(server) if d["state"] == "online")


def _stored(database: Path) -> dict[str, set[int]]:
    with contextlib.closing(sqlite3.connect(database)) as db:
        rows = db.execute("SELECT device_id, seq FROM telemetry").fetchall()
    stored: dict[str, set[int]] = {}
    for device_id, seq in rows:
        stored.setdefault(device_id, set()).add(int(seq))
    return stored


def soak(root: Path, plan: SoakPlan, model: str, packages: list[tuple[str, Path]], key: Path) -> SoakReport:
    """Run the soak in ``root`` with ``model``'s ``packages`` ((version, file), the first installed, the others
    rolled out in turn), signed with the private key whose public half is ``key``."""
    versions = [version for version, _ in packages]
    faults: list[tuple[float, str]] = []
    with _running(root, plan, [path for _, path in packages], key) as parts:
        server, fleet = parts.server, parts.fleet
        assert fleet is not None  # started by _running
        _wait(lambda: _online(server) == plan.devices, 120, "the emulated devices did not all enroll and report")
        started = time.monotonic()
        injector = _Faults(plan, parts, model, versions)
        turn = 0
        # a fault in the middle of each slot of fault_every_s
        while (turn + 0.5) * plan.fault_every_s < plan.duration_s:
            time.sleep(max(0.0, started + (turn + 0.5) * plan.fault_every_s - time.monotonic()))
            name = FAULTS[turn % len(FAULTS)]
            faults.append((time.monotonic() - started, name))
            injector.inject(name)
            turn += 1
        time.sleep(max(0.0, started + plan.duration_s - time.monotonic()))
        _wait(
            lambda: all(state in _TERMINAL for state in _rollouts(server).values()),
            plan.settle_s,
            "a rollout neither completed nor aborted after the soak",
        )
        versions_out = set(versions[: injector.rolled])
        _wait(lambda: _online(server) == plan.devices, plan.settle_s, "devices stayed offline after the soak")
        devices = _devices(server)
        rollouts = _rollouts(server)
        restarts = sum(p.restarts for p in fleet.processes.values())
        cohort = len(fleet.processes)
        bricked = [
            f"{d['id']}: {d['state']}, {d['model_version']}"
            for d in devices
            if d["state"] != "online" or d["model_version"] not in versions_out
        ]
        parts.stop_fleet()
        # what the devices sent last (their outboxes, their final interval) reaches the database within seconds
        database = server.data_dir / "fleet.db"
        numbered = {d.name: _numbered(d) for d in (root / "devices").iterdir() if (d / SEQ_FILE).is_file()}
        with contextlib.suppress(ConfigError):
            _wait(lambda: not _missing(numbered, _stored(database)), plan.settle_s, "telemetry is missing")
    missing = _missing(numbered, _stored(database))
    return SoakReport(
        faults=faults,
        devices=plan.devices,
        numbered=sum(numbered.values()),
        stored=sum(len(s) for s in _stored(database).values()),
        missing=missing,
        bricked=bricked,
        rollouts=rollouts,
        unfinished=[r for r, state in rollouts.items() if state not in _TERMINAL],
        agent_restarts=restarts,
        cohort=cohort,
        cohort_offline_in_cut=injector.cut_offline,
    )

"""An update survives SIGKILL and a power cut at every step: the agent process dies at a failpoint (and, for a
power cut, the files it wrote are cut back to their last fsync); after a restart the device runs a verified
model and the update is either committed or rolled back, never half-installed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_agent import durable, failpoints
from edge_agent.updates import Journal, Step
from edgefleet.package import read_installed
from edgefleet.signing import load_public_keys
from edgefleet.topics import TopicKind, topic
from tests.agent.conftest import TinyPackage
from tests.agent.tiny import build_tiny_package
from tests.agent.update_support import Commander, files, outcome, pointer

pytestmark = pytest.mark.integration

# every step boundary of an update, the middle of its download, and its health window; "@N" is the N-th pass
FAILPOINTS = [
    "assigned",
    "downloading@2",
    "downloading@9",
    "downloaded",
    "verified",
    "staged",
    "smoke-tested",
    "switched",
    "active",
    "health@3",
    "committed",
]


@pytest.fixture(scope="module")
def v2(tiny_package: TinyPackage, tmp_path_factory: pytest.TempPathFactory) -> TinyPackage:
    # padded to many download chunks, so a kill can land in the middle of the download
    return build_tiny_package(
        tmp_path_factory.mktemp("v2"), version="2.0.0", seed=2, keys=tiny_package.public_key.parent, pad_floats=80_000
    )


def _config(tmp_path: Path, tiny: TinyPackage, port: int) -> Path:
    config = tmp_path / "agent.toml"
    config.write_text(
        f'device_id = "dev-1"\ndata_dir = "{tmp_path / "agent"}"\npackage = "{tiny.path}"\n'
        f'trusted_keys = ["{tiny.public_key}"]\ntelemetry_interval_s = 0.5\n'
        f"[broker]\nport = {port}\n[source]\nwindows_per_s = 100\n"
        # small fsync steps, so a power cut in the download leaves a part of it; the latency gate is tested with the
        # agent (test_updates.py), and here a loaded machine could fail it, so the update never reached "committed"
        "[updates]\nhealth_window_s = 0.5\nhealth_min_inferences = 5\nfsync_every_bytes = 4096\n"
        "max_latency_ratio = 50\n"
    )
    return config


class Agents:
    """Agent processes started from one config, each logging into its own file; all killed at the end."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.started: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(self, env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = self.config.with_name(f"agent-{len(self.started)}.log")
        with log.open("wb") as stderr:
            process = subprocess.Popen(
                [Path(sys.executable).parent / "edgefleet-agent", "run", "--config", str(self.config)],
                stderr=stderr,
                env=os.environ | env,
            )
        self.started.append((process, log))
        return process

    def log(self, process: subprocess.Popen[bytes]) -> str:
        return next(log.read_text() for p, log in self.started if p is process)

    def kill_all(self) -> None:
        for process, _ in self.started:
            if process.poll() is None:
                process.kill()
                process.wait(10)


@pytest.fixture
def agents(tmp_path: Path, tiny_package: TinyPackage, mqtt_broker: int) -> Iterator[Agents]:
    made = Agents(_config(tmp_path, tiny_package, mqtt_broker))
    yield made
    made.kill_all()


def _cut_power(log: Path, data_dir: Path) -> int:
    """Cut every file the agent fsync'd back to its last fsync'd length, and empty the downloads it never
    fsync'd: what a power cut leaves of the page cache. Returns how many files lost bytes."""
    synced: dict[str, int] = {}
    for line in log.read_text().splitlines():
        match line.split("\t"):
            case ["sync", path, length]:
                synced[path] = int(length)
            case ["rename", source, target]:
                synced[target] = synced.pop(source, 0)
    downloads = data_dir / "downloads"
    if downloads.is_dir():
        synced |= {str(p): 0 for p in downloads.iterdir() if str(p) not in synced}
    cut = 0
    for path, size in synced.items():
        if os.path.isfile(path) and os.path.getsize(path) > size:
            os.truncate(path, size)
            cut += 1
    return cut


# the suite runs every failpoint once per kind of fault; `make bench` many rounds over, counting the outcomes
ROUNDS = int(os.environ.get("EDGEFLEET_FAULT_ROUNDS", "1"))


@pytest.mark.parametrize("round_", range(ROUNDS), ids=lambda r: f"round{r}")
@pytest.mark.parametrize("power_cut", [False, True], ids=["sigkill", "power-cut"])
@pytest.mark.parametrize("failpoint", FAILPOINTS)
def test_an_update_killed_at_any_step_ends_committed_or_rolled_back_on_a_verified_model(
    tiny_package: TinyPackage,
    v2: TinyPackage,
    tmp_path: Path,
    mqtt_broker: int,
    subscribe: Callable[..., Any],
    agents: Agents,
    failpoint: str,
    power_cut: bool,
    round_: int,
) -> None:
    events = subscribe(topic("dev-1", TopicKind.EVENTS))
    status = subscribe(topic("dev-1", TopicKind.STATUS))
    log = tmp_path / "fsync.log"
    env = {failpoints.ENV: failpoint} | ({durable.POWER_CUT_LOG_ENV: str(log)} if power_cut else {})
    with files(v2.path.read_bytes()) as server:
        server.then()  # every request answered in full
        doomed = agents.start(env)
        status.wait_for(topic("dev-1", TopicKind.STATUS), timeout_s=60)
        Commander(mqtt_broker).assign(v2.path, server.url, rollout="r-fault")
        doomed.wait(60)
        assert doomed.returncode == -signal.SIGKILL, agents.log(doomed)
        if power_cut:
            _cut_power(log, tmp_path / "agent")
        survivor = agents.start({})
        final = outcome(events, "r-fault", timeout_s=60)
        survivor.send_signal(signal.SIGTERM)
        survivor.wait(30)
    assert survivor.returncode == 0, agents.log(survivor)
    assert final.kind in ("committed", "rolled-back"), final.detail
    record = Journal(tmp_path / "agent" / "update-journal.json").read()
    assert record is not None
    assert record.step in (Step.COMMITTED, Step.ROLLED_BACK)
    active = pointer(tmp_path / "agent")["active"]
    installed = read_installed(tmp_path / "agent" / "slots" / active, load_public_keys([tiny_package.public_key]))
    assert installed.manifest.version == ("2.0.0" if record.step is Step.COMMITTED else "1.0.0")
    downloads = tmp_path / "agent" / "downloads"
    assert not downloads.is_dir() or not list(downloads.iterdir())


def test_a_model_that_keeps_crashing_the_agent_in_its_health_window_is_rolled_back(
    tiny_package: TinyPackage,
    v2: TinyPackage,
    tmp_path: Path,
    mqtt_broker: int,
    subscribe: Callable[..., Any],
    agents: Agents,
) -> None:
    events = subscribe(topic("dev-1", TopicKind.EVENTS))
    status = subscribe(topic("dev-1", TopicKind.STATUS))
    with files(v2.path.read_bytes()) as server:
        first = agents.start({failpoints.ENV: "health"})
        status.wait_for(topic("dev-1", TopicKind.STATUS), timeout_s=60)
        Commander(mqtt_broker).assign(v2.path, server.url, rollout="r-crash")
        first.wait(60)
        # the new model is live at each start, and the process dies again inside its window
        second = agents.start({failpoints.ENV: "health"})
        second.wait(60)
        assert (first.returncode, second.returncode) == (-signal.SIGKILL, -signal.SIGKILL)
        survivor = agents.start({})
        final = outcome(events, "r-crash", timeout_s=60)
        survivor.send_signal(signal.SIGTERM)
        survivor.wait(30)
    assert (final.kind, final.reason) == ("rolled-back", "crash-loop"), final.detail
    assert "restarted 2 times" in final.detail
    active = pointer(tmp_path / "agent")["active"]
    installed = read_installed(tmp_path / "agent" / "slots" / active, load_public_keys([tiny_package.public_key]))
    assert installed.manifest.version == "1.0.0"
    assert not (tmp_path / "agent" / "slots" / ("b" if active == "a" else "a")).exists()

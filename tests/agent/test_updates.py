"""Model updates on a serving agent, over a real broker and a real HTTP server: commit when healthy, roll back
when not or when told, and refuse every attack with an event that names it, the running model untouched."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from edge_agent import SimulatedSourceSettings
from edge_agent.settings import UpdateSettings
from edgefleet.messages import RollbackCommand
from edgefleet.package import MANIFEST_NAME
from edgefleet.signing import generate_keys
from edgefleet.topics import TopicKind, topic
from tests.agent.conftest import TinyPackage, agent_settings
from tests.agent.tiny import Variant, build_tiny_package
from tests.agent.update_support import Commander, files, kinds, outcome, pointer, running, serving
from tests.package.tarcraft import Member, read_members, write_members
from tests.support import wait_until
from tests.updates.conftest import Mode, Step

pytestmark = pytest.mark.integration

HEALTH = UpdateSettings(health_window_s=0.6, health_min_inferences=10, download_read_timeout_s=2.0)


@dataclass(frozen=True)
class Packages:
    v1: TinyPackage
    v2: TinyPackage
    fails_live: TinyPackage
    slow: TinyPackage
    older: TinyPackage
    other_profile: TinyPackage
    other_key: TinyPackage
    newer_agent: TinyPackage
    root: Path


@pytest.fixture(scope="module")
def packages(tiny_package: TinyPackage, tmp_path_factory: pytest.TempPathFactory) -> Packages:
    root = tmp_path_factory.mktemp("versions")
    keys = tiny_package.public_key.parent

    def build(version: str, variant: Variant = Variant.HEALTHY, **changes: Any) -> TinyPackage:
        return build_tiny_package(root / f"{version}-{variant.value}", version=version, variant=variant, **changes)

    strangers = root / "stranger-keys"
    generate_keys(strangers)
    return Packages(
        v1=tiny_package,
        v2=build("2.0.0", seed=2, keys=keys),
        fails_live=build("2.1.0", Variant.FAILS_LIVE, keys=keys),
        slow=build("2.2.0", Variant.SLOW, keys=keys),
        older=build("0.9.0", keys=keys),
        other_profile=build("2.3.0", keys=keys, profiles=["jetson-orin-nano"]),
        other_key=build("2.4.0", keys=strangers),
        newer_agent=build("2.5.0", keys=keys, min_agent_version="9.0.0"),
        root=root,
    )


def settings(packages: Packages, tmp_path: Path, port: int, **changes: object) -> Any:
    base: dict[str, object] = {
        "source": SimulatedSourceSettings(fault="bearing_outer", windows_per_s=200),
        "updates": HEALTH,
        "telemetry_interval_s": 0.2,
    }
    return agent_settings(packages.v1, tmp_path / "agent", port, **(base | changes))


def test_a_healthy_update_goes_through_every_step_and_commits(
    packages: Packages, tmp_path: Path, mqtt_broker: int, subscribe: Callable[..., Any]
) -> None:
    events = subscribe(topic("dev-1", TopicKind.EVENTS))
    status = subscribe(topic("dev-1", TopicKind.STATUS))
    with files(packages.v2.path.read_bytes()) as server, serving(settings(packages, tmp_path, mqtt_broker)) as agent:
        Commander(mqtt_broker).assign(packages.v2.path, server.url, rollout="r-ok")
        final = outcome(events, "r-ok")
        assert final.kind == "committed", final.detail
        assert kinds(events, "r-ok") == [
            "assigned", "downloading", "verified", "staged", "smoke-tested", "active", "committed"
        ]  # fmt: skip
        assert running(agent) == ("2.0.0", "b")
        wait_until(lambda: b'"version":"2.0.0"' in status.on(topic("dev-1", TopicKind.STATUS))[-1][0])
    assert pointer(tmp_path / "agent") == {
        "active": "b",
        "good": "b",
        "factory_sha256": pointer(tmp_path / "agent")["factory_sha256"],
    }
    assert not list((tmp_path / "agent" / "downloads").iterdir())  # the package file went once staged


def test_the_same_command_twice_installs_once(
    packages: Packages, tmp_path: Path, mqtt_broker: int, subscribe: Callable[..., Any]
) -> None:
    events = subscribe(topic("dev-1", TopicKind.EVENTS))
    with files(packages.v2.path.read_bytes()) as server, serving(settings(packages, tmp_path, mqtt_broker)):
        commander = Commander(mqtt_broker)
        commander.assign(packages.v2.path, server.url, rollout="r-dup")
        assert outcome(events, "r-dup").kind == "committed"
        commander.assign(packages.v2.path, server.url, rollout="r-dup")  # a retained or repeated assignment
        time.sleep(0.5)
        assert kinds(events, "r-dup").count("assigned") == 1
        assert len([s for s in server.seen if s.status in (200, 206)]) == 1


@pytest.mark.parametrize(
    ("variant", "reason"),
    [("fails_live", "error-rate"), ("slow", "latency")],
)
def test_a_model_that_fails_its_health_window_is_rolled_back(
    packages: Packages, tmp_path: Path, mqtt_broker: int, subscribe: Callable[..., Any], variant: str, reason: str
) -> None:
    bad: TinyPackage = getattr(packages, variant)
    events = subscribe(topic("dev-1", TopicKind.EVENTS))
    with files(bad.path.read_bytes()) as server, serving(settings(packages, tmp_path, mqtt_broker)) as agent:
        time.sleep(0.5)  # the running model's latency is the baseline the new one is held to
        Commander(mqtt_broker).assign(bad.path, server.url, rollout="r-bad")
        final = outcome(events, "r-bad")
        assert (final.kind, final.reason) == ("rolled-back", reason), final.detail
        assert "active" in kinds(events, "r-bad")  # it did go live before the window judged it
        assert running(agent) == ("1.0.0", "a")
    assert pointer(tmp_path / "agent")["active"] == "a"
    assert not (tmp_path / "agent" / "slots" / "b").exists()  # the rejected model takes no space


def test_rollback_on_command_returns_to_the_previous_version_once(
    packages: Packages, tmp_path: Path, mqtt_broker: int, subscribe: Callable[..., Any]
) -> None:
    events = subscribe(topic("dev-1", TopicKind.EVENTS))
    with files(packages.v2.path.read_bytes()) as server, serving(settings(packages, tmp_path, mqtt_broker)) as agent:
        commander = Commander(mqtt_broker)
        commander.assign(packages.v2.path, server.url, rollout="r-up")
        assert outcome(events, "r-up").kind == "committed"
        commander.send(RollbackCommand(rollout_id="r-down", reason="operator saw drift"))
        final = outcome(events, "r-down")
        assert (final.kind, final.reason, final.detail) == ("rolled-back", "command", "operator saw drift")
        assert running(agent)[0] == "1.0.0"
        # a repeated rollback never moves forward again: nothing older is left
        commander.send(RollbackCommand(rollout_id="r-down-again"))
        again = outcome(events, "r-down-again")
        assert (again.kind, again.reason) == ("failed", "nothing-to-roll-back")
        assert running(agent)[0] == "1.0.0"


def _tampered(packages: Packages) -> Path:
    """v2 with one byte of its int8 model changed, the signed manifest left as it was."""
    members = read_members(packages.v2.path)
    changed = [
        Member(m.name, bytes([m.data[0] ^ 1]) + m.data[1:]) if m.name == "model-int8.onnx" else m for m in members
    ]
    return write_members(packages.root / "tampered.efpkg", changed)


def _bad_signature(packages: Packages) -> Path:
    """v2 whose manifest says another version than the one its signature was made over."""
    members = read_members(packages.v2.path)
    changed = [
        Member(m.name, m.data.replace(b'"version":"2.0.0"', b'"version":"2.0.1"')) if m.name == MANIFEST_NAME else m
        for m in members
    ]
    return write_members(packages.root / "bad-signature.efpkg", changed)


def _mixed(packages: Packages) -> Path:
    """v2's signed manifest with v1's model files: a mix-and-match of two versions."""
    old = {m.name: m for m in read_members(packages.v1.path)}
    members = [old[m.name] if m.name.endswith(".onnx") else m for m in read_members(packages.v2.path)]
    return write_members(packages.root / "mixed.efpkg", members)


ATTACKS: dict[str, tuple[Callable[[Packages], Path], str, str]] = {
    # attack: (the package, the reason the failed event must carry, words its detail must hold)
    "tampered artifact": (_tampered, "tampered", "model-int8.onnx"),
    "wrong signature": (_bad_signature, "bad-signature", "does not match"),
    "untrusted key": (lambda p: p.other_key.path, "untrusted-key", "not among the trusted keys"),
    "older version": (lambda p: p.older.path, "downgrade", "older than the installed"),
    "another profile": (lambda p: p.other_profile.path, "wrong-profile", "jetson-orin-nano"),
    "mix and match": (_mixed, "tampered", "does not match the sha256"),
    "needs a newer agent": (lambda p: p.newer_agent.path, "agent-too-old", "needs agent 9.0.0"),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_an_attack_in_the_package_is_refused_by_name_and_the_running_model_stays(
    packages: Packages, tmp_path: Path, mqtt_broker: int, subscribe: Callable[..., Any], attack: str
) -> None:
    make, reason, words = ATTACKS[attack]
    package = make(packages)
    events = subscribe(topic("dev-1", TopicKind.EVENTS))
    version = "2.0.0" if package.parent == packages.root else package.name.removeprefix("tiny-pump-").split("-")[0]
    with files(package.read_bytes()) as server, serving(settings(packages, tmp_path, mqtt_broker)) as agent:
        # a compromised server names the attacker's file by its true hash: only the package's own checks remain
        Commander(mqtt_broker).assign(package, server.url, rollout="r-attack", package=f"tiny-pump@{version}")
        final = outcome(events, "r-attack")
        assert (final.kind, final.reason) == ("failed", reason), final.detail
        assert words in final.detail
        assert "active" not in kinds(events, "r-attack")
        assert running(agent)[0] == "1.0.0"
    assert pointer(tmp_path / "agent")["active"] == "a"
    assert not (tmp_path / "agent" / "slots" / "b").exists()
    assert not list((tmp_path / "agent" / "downloads").iterdir())


@pytest.mark.parametrize(
    ("plan", "reason", "deadline_s"),
    [
        (Step(Mode.LONG_LENGTH), "endless-data", 30.0),
        (Step(Mode.ENDLESS), "endless-data", 30.0),
        (Step(Mode.TRICKLE, 50), "slow-retrieval", 2.0),
    ],
    ids=["long content-length", "no content-length", "trickle"],
)
def test_a_download_attack_is_refused_by_name(
    packages: Packages,
    tmp_path: Path,
    mqtt_broker: int,
    subscribe: Callable[..., Any],
    plan: Step,
    reason: str,
    deadline_s: float,
) -> None:
    events = subscribe(topic("dev-1", TopicKind.EVENTS))
    with files(packages.v2.path.read_bytes()) as server, serving(settings(packages, tmp_path, mqtt_broker)) as agent:
        server.then(*[plan] * 50)
        started = time.monotonic()
        Commander(mqtt_broker).assign(packages.v2.path, server.url, rollout="r-net", deadline_s=deadline_s)
        final = outcome(events, "r-net", timeout_s=deadline_s + 15)
        assert (final.kind, final.reason) == ("failed", reason), final.detail
        assert time.monotonic() - started < deadline_s + 5
        assert running(agent)[0] == "1.0.0"
    assert not list((tmp_path / "agent" / "downloads").iterdir())


def test_a_package_that_is_not_the_one_the_command_names_is_refused(
    packages: Packages, tmp_path: Path, mqtt_broker: int, subscribe: Callable[..., Any]
) -> None:
    events = subscribe(topic("dev-1", TopicKind.EVENTS))
    with files(packages.v2.path.read_bytes()) as server, serving(settings(packages, tmp_path, mqtt_broker)):
        commander = Commander(mqtt_broker)
        # the file on the wire is not the one whose hash the command pins (a man in the middle)
        commander.assign(packages.v2.path, server.url, rollout="r-hash", sha256=hashlib.sha256(b"other").hexdigest())
        assert (outcome(events, "r-hash").reason) == "hash-mismatch"
        commander.assign(packages.v2.path, server.url, rollout="r-name", package="tiny-pump@2.0.1")
        assert (outcome(events, "r-name").reason) == "mismatch"

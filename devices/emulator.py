"""The fleet emulator: N real edge agents in one process, one thread each, as a fleet in CI."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from devices.profiles import PROFILES, get_profile
from devices.speed import ProfiledBackend
from edge_agent import Agent, AgentSettings, BrokerSettings, SimulatedSourceSettings
from edgefleet.errors import EdgefleetError, InputError
from edgefleet.sensor_sim import FAULTS

__all__ = ["Fleet"]

log = logging.getLogger(__name__)


@dataclass
class Fleet:
    """Emulated devices ``emu-001`` … with profiles and machine faults in turn; every agent is the real agent code.

    Each device has its own data folder (slots, sequence numbers) under ``data_dir`` and runs as fast as
    its profile's latency factor says. Raises InputError for an unknown profile or fault, before anything starts.
    """

    devices: int
    package: Path
    trusted_keys: list[Path]
    broker_host: str
    broker_port: int
    data_dir: Path
    telemetry_interval_s: float = 10.0
    windows_per_s: float = 20.0
    profiles: tuple[str, ...] = tuple(PROFILES)
    faults: tuple[str, ...] = ("normal",)
    agents: list[Agent] = field(default_factory=list, init=False)
    _threads: list[threading.Thread] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        if self.devices < 1 or not self.profiles or not self.faults:
            raise InputError(
                f"a fleet of {self.devices} devices with {len(self.profiles)} profiles and {len(self.faults)} faults",
                hint="ask for at least one device, one profile and one fault",
            )
        for profile_id in self.profiles:
            get_profile(profile_id)
        unknown = [f for f in self.faults if f not in FAULTS]
        if unknown:
            raise InputError(f"unknown machine faults {unknown}", hint=f"choose from: {', '.join(FAULTS)}")

    def settings_of(self, index: int) -> AgentSettings:
        """The settings of device number ``index`` (counted from 0)."""
        device_id = f"emu-{index + 1:03d}"
        return AgentSettings(
            device_id=device_id,
            profile=self.profiles[index % len(self.profiles)],
            data_dir=self.data_dir / device_id,
            broker=BrokerSettings(host=self.broker_host, port=self.broker_port),
            package=self.package,
            trusted_keys=self.trusted_keys,
            telemetry_interval_s=self.telemetry_interval_s,
            source=SimulatedSourceSettings(
                fault=self.faults[index % len(self.faults)], seed=index, windows_per_s=self.windows_per_s
            ),
        )

    def start(self) -> None:
        """Install, load and connect every agent, then run each on its own thread; raises EdgefleetError.

        When one device cannot start, those already started are closed before the error goes up.
        """
        try:
            for index in range(self.devices):
                settings = self.settings_of(index)
                factor = get_profile(settings.profile).latency_factor
                agent = Agent(settings, wrap_backend=partial(ProfiledBackend, latency_factor=factor))
                agent.start()
                self.agents.append(agent)
        except EdgefleetError:
            self.stop()
            raise
        for agent in self.agents:
            thread = threading.Thread(
                target=self._serve, args=(agent,), name=f"agent-{agent.settings.device_id}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        log.info("fleet.started", extra={"devices": self.devices})

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop every agent: each reports its last interval, says offline and disconnects."""
        for agent in self.agents:
            agent.stop()
        for thread in self._threads:
            thread.join(timeout_s)
            if thread.is_alive():
                log.warning("fleet.thread_still_running", extra={"thread": thread.name, "timeout_s": timeout_s})
        for agent in self.agents:
            agent.close()
        log.info("fleet.stopped", extra={"devices": len(self.agents)})
        self.agents.clear()
        self._threads.clear()

    @staticmethod
    def _serve(agent: Agent) -> None:
        try:
            agent.run()
        except Exception:  # one emulated device failing must not go unnoticed, nor stop the others
            log.exception("fleet.agent_failed", extra={"device": agent.settings.device_id})

"""The fleet emulator: N real edge agents in one process, one thread each, as a fleet in CI."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

from devices.profiles import PROFILES
from edge_agent import Agent, AgentSettings, BrokerSettings, SimulatedSourceSettings

__all__ = ["Fleet"]

log = logging.getLogger(__name__)


@dataclass
class Fleet:
    """Emulated devices ``emu-001`` … with profiles and machine faults in turn; every agent is the real agent code."""

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

    def start(self) -> None:
        """Install, load and connect every agent, then run each on its own thread."""
        for index in range(self.devices):
            device_id = f"emu-{index + 1:03d}"
            settings = AgentSettings(
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
            agent = Agent(settings)
            agent.start()
            self.agents.append(agent)
        for agent in self.agents:
            thread = threading.Thread(target=agent.run, name=f"agent-{agent.settings.device_id}", daemon=True)
            thread.start()
            self._threads.append(thread)
        log.info("fleet.started", extra={"devices": self.devices})

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop every agent: each reports its last interval, says offline and disconnects."""
        for agent in self.agents:
            agent.stop()
        for thread in self._threads:
            thread.join(timeout_s)
        for agent in self.agents:
            agent.close()
        log.info("fleet.stopped", extra={"devices": self.devices})

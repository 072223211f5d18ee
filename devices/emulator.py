"""The fleet emulator: N real edge agents in one process, one thread each, as a fleet in CI."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from devices.agent_process import AgentProcess
from devices.broker import Mosquitto
from devices.disk import SmallDisk
from devices.downloads import DownloadRoute
from devices.faults import (
    BROKER_FAULTS,
    DOWNLOAD_FAULTS,
    IMAGE_FAULTS,
    NETWORK_FAULTS,
    DriftingSource,
    Injection,
    check_injections,
    drift_schedule,
    schedule_cut,
)
from devices.netcut import CuttableProxy
from devices.netns import CohortNetwork
from devices.profiles import PROFILES, get_profile
from devices.speed import ProfiledBackend
from edge_agent import Agent, AgentSettings, BrokerSettings, SimulatedSourceSettings
from edge_agent.backends import DEFAULT_RUNTIMES
from edge_agent.enroll import with_credentials
from edge_agent.settings import EnrollmentSettings, UpdateSettings
from edge_agent.sources import open_source
from edge_agent.sources.settings import SimulatedCameraSettings
from edgefleet.errors import EdgefleetError, InputError
from edgefleet.manifest import ImagePreprocessing
from edgefleet.package import inspect_package
from edgefleet.sensor_sim import FAULTS

__all__ = ["MAX_DEVICES_PER_PROCESS", "Fleet"]

log = logging.getLogger(__name__)

# paho-mqtt watches its socket with select(), limited to file descriptors below 1024; a device holds about 6
# (its MQTT socket, its outbox's SQLite database, journal and shared memory, sequence and slot files)
MAX_DEVICES_PER_PROCESS = 120
# a full disk's device still needs room for its package's two slots and the download, before the fault
_DISK_SPARE_MB = 8


@dataclass
class Fleet:
    """Emulated devices ``emu-001`` … with profiles and machine faults in turn; every agent is the real agent code.

    Each device has its own data folder (slots, sequence numbers) under ``data_dir`` and runs as fast as
    its profile's latency factor says; a sensor package gets the simulated sensor, a camera package the
    simulated camera, each at ``windows_per_s`` inputs per second. ``injections`` (devices.faults names,
    "none" for a healthy device) are given out in turn like profiles, each starting ``inject_after_s`` after
    the fleet starts and lasting (or growing over) ``fault_s``. A device with a network fault reaches the broker
    through its own ``CuttableProxy`` (``proxies``); ``broker-restart`` needs ``broker``, a Mosquitto the caller
    started; ``crash-mid-update`` devices run as their own processes (``processes``), armed at ``crash_at``.
    ``updates`` are every device's update settings (its health window); with ``enrollment`` each device enrolls
    itself at the fleet server on its first start. ``faults_armed``, when given, holds the input faults back until
    it is set: their clock starts then (a scenario injects drift when it is ready for it). With ``cohort_network``
    the process devices run inside that network namespace, reaching the broker at ``broker_host`` across it; with
    ``broker_ca_file`` every device connects over TLS and checks the broker's certificate against that CA. ``first_index`` numbers the devices from ``emu-{first_index + 1}`` (a shard of a larger fleet, devices.shards).
    Raises InputError for an unknown profile or fault, before anything starts; ``start`` refuses more devices than
    one process can hold (``MAX_DEVICES_PER_PROCESS``).
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
    injections: tuple[str, ...] = ("none",)
    inject_after_s: float = 0.0
    fault_s: float = 30.0
    crash_at: str = "staged"
    broker: Mosquitto | None = None
    first_index: int = 0
    updates: UpdateSettings = field(default_factory=UpdateSettings)
    enrollment: EnrollmentSettings | None = None
    faults_armed: threading.Event | None = None
    keepalive_s: int = 30
    broker_ca_file: Path | None = None
    cohort_network: CohortNetwork | None = None
    agents: list[Agent] = field(default_factory=list, init=False)
    processes: dict[str, AgentProcess] = field(default_factory=dict, init=False)
    proxies: dict[str, CuttableProxy] = field(default_factory=dict, init=False)
    routes: dict[str, DownloadRoute] = field(default_factory=dict, init=False)
    disks: dict[str, SmallDisk] = field(default_factory=dict, init=False)
    _threads: list[threading.Thread] = field(default_factory=list, init=False)
    _faults_stop: threading.Event = field(default_factory=threading.Event, init=False)
    _camera: bool = field(default=False, init=False)

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
        check_injections(self.injections)
        if self.broker is None and set(self.injections) & set(BROKER_FAULTS):
            raise InputError(
                "broker-restart restarts a broker the emulator started itself",
                hint="add --start-broker (or pass Fleet(broker=Mosquitto(...)))",
            )

    def injection_of(self, index: int) -> Injection:
        """The fault injected into device number ``index`` (counted from 0); name "none" for a healthy one."""
        name = self.injections[index % len(self.injections)]
        return Injection(name, self.inject_after_s, self.fault_s)

    def settings_of(self, index: int, broker_port: int | None = None) -> AgentSettings:
        """The settings of device number ``index`` (counted from 0), reaching the broker on ``broker_port``."""
        device_id = f"emu-{index + 1:03d}"
        host, port = (self.broker_host, self.broker_port) if broker_port is None else ("127.0.0.1", broker_port)
        profile = get_profile(self.profiles[index % len(self.profiles)])
        source: SimulatedSourceSettings | SimulatedCameraSettings = (
            SimulatedCameraSettings(kind="simulated_camera", seed=index, images_per_s=self.windows_per_s)
            if self._camera
            else SimulatedSourceSettings(
                fault=self.faults[index % len(self.faults)], seed=index, windows_per_s=self.windows_per_s
            )
        )
        return AgentSettings(
            device_id=device_id,
            profile=profile.id,
            # the device runs what its profile's runtimes run; the mobile ones take bundles, not packages
            runtimes=[r for r in profile.runtimes if r in DEFAULT_RUNTIMES],
            data_dir=self.data_dir / device_id,
            broker=BrokerSettings(
                host=host,
                port=port,
                keepalive_s=self.keepalive_s,
                tls=self.broker_ca_file is not None,
                ca_file=self.broker_ca_file,
                reconnect_min_s=0.2,
                reconnect_max_s=2.0,
            ),
            package=self.package,
            trusted_keys=self.trusted_keys,
            telemetry_interval_s=self.telemetry_interval_s,
            source=source,
            updates=self.updates,
            enrollment=self.enrollment,
        )

    def start(self) -> None:
        """Install, load and connect every device, then run each on its own thread; raises EdgefleetError.

        When one device cannot start, those already started are closed before the error goes up.
        """
        if self.devices > MAX_DEVICES_PER_PROCESS:
            raise InputError(
                f"{self.devices} devices in one process: paho-mqtt's network loop uses select(), which cannot watch "
                "the sockets past file descriptor 1024, and each device holds about 6",
                hint=f"run at most {MAX_DEVICES_PER_PROCESS} per process: devices.shards.ShardedFleet does that",
            )
        self._camera = isinstance(inspect_package(self.package).preprocessing, ImagePreprocessing)
        self._check_inputs_fit()
        try:
            for index in range(self.first_index, self.first_index + self.devices):
                self._start_device(index)
        except EdgefleetError:
            self.stop()
            raise
        for agent in self.agents:
            index = int(agent.settings.device_id.removeprefix("emu-")) - 1
            thread = threading.Thread(
                target=self._serve,
                args=(agent, self.injection_of(index), index),
                name=f"agent-{agent.settings.device_id}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)
        self._schedule_machine_faults()
        log.info("fleet.started", extra={"devices": self.devices})

    def _check_inputs_fit(self) -> None:
        names = set(self.injections)
        image_faults, input_faults = names & set(IMAGE_FAULTS), {n for n in names if drift_schedule(Injection(n))}
        wrong = image_faults if not self._camera else input_faults - image_faults
        if wrong:
            kind = "a camera" if not self._camera else "a sensor"
            raise InputError(f"the faults {sorted(wrong)} need {kind} model", hint=f"{self.package} takes other inputs")

    def _start_device(self, index: int) -> None:
        injection = self.injection_of(index)
        device_id = f"emu-{index + 1:03d}"
        port = None
        if injection.name in NETWORK_FAULTS:
            # only a device whose network fails goes through a proxy: 3 threads and 3 sockets each
            proxy = self.proxies[device_id] = CuttableProxy(self.broker_host, self.broker_port)
            port = proxy.port
        settings = self.settings_of(index, port)
        if injection.name == "disk-full":
            size_mb = 3 * (self.package.stat().st_size >> 20) + _DISK_SPARE_MB
            self.disks[device_id] = SmallDisk(settings.data_dir, size_mb)
        if injection.name == "crash-mid-update":
            wrap = self.cohort_network.command if self.cohort_network is not None else None
            process = self.processes[device_id] = AgentProcess(settings, self.crash_at, wrap)
            process.start()
            return
        factor = get_profile(settings.profile).latency_factor
        # a device given a provisioning token enrolls itself first, as a real one does on its first start
        agent = Agent(with_credentials(settings), wrap_backend=partial(ProfiledBackend, latency_factor=factor))
        shaping = DOWNLOAD_FAULTS.get(injection.name)
        if shaping is not None:
            route = self.routes[device_id] = DownloadRoute(device_id, shaping)
            # the device's network path: what the updater is told to download goes through the shaping proxy
            agent.link.commands = route.wrap(agent.link.commands)  # type: ignore[method-assign]
        agent.start()
        self.agents.append(agent)

    def _schedule_machine_faults(self) -> None:
        for device_id, proxy in self.proxies.items():
            index = int(device_id.removeprefix("emu-")) - 1
            self._threads.append(schedule_cut(proxy, self.injection_of(index), self._faults_stop))
        if self.disks:
            self._later("fault-disk-full", self._fill_disks)
        if self.broker is not None and set(self.injections) & set(BROKER_FAULTS):
            broker = self.broker
            self._later("fault-broker-restart", lambda: broker.restart(self.fault_s, self._faults_stop))

    def _fill_disks(self) -> None:
        for disk in self.disks.values():
            disk.fill()

    def _later(self, name: str, action: Callable[[], object]) -> None:
        def _run() -> None:
            if not self._faults_stop.wait(self.inject_after_s):
                action()

        thread = threading.Thread(target=_run, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop every device: each reports its last interval, says offline and disconnects."""
        self._faults_stop.set()
        for proxy in self.proxies.values():
            proxy.restore()
        if self.broker is not None and not self.broker.is_running:
            self.broker.start()  # a restart in progress: the devices' last words need it
        for agent in self.agents:
            agent.stop()
        for process in self.processes.values():
            process.stop()
        # one deadline for them all: a loaded machine must not make stop take timeout_s per device
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.warning("fleet.thread_still_running", extra={"thread_name": thread.name, "timeout_s": timeout_s})
        for agent in self.agents:
            agent.close()
        for proxy in self.proxies.values():
            proxy.close()
        for route in self.routes.values():
            route.close()
        for disk in self.disks.values():
            disk.unmount()
        log.info("fleet.stopped", extra={"devices": len(self.agents) + len(self.processes)})
        self.agents.clear()
        self.processes.clear()
        self.proxies.clear()
        self.routes.clear()
        self.disks.clear()
        self._threads.clear()

    def _serve(self, agent: Agent, injection: Injection, index: int) -> None:
        try:
            schedule = drift_schedule(injection)
            if schedule is None:
                agent.run()
                return
            inner = open_source(agent.settings.source, agent.model.manifest.preprocessing, self._faults_stop)
            agent.run(source=DriftingSource(inner, schedule, seed=index, armed=self.faults_armed))
        except Exception:  # one emulated device failing must not go unnoticed, nor stop the others
            log.exception("fleet.agent_failed", extra={"device": agent.settings.device_id})

"""A fleet larger than one process can hold, as shards of at most ``MAX_DEVICES_PER_PROCESS`` devices each.

Each shard is a ``Fleet`` in a process of its own (started with ``spawn``: a fork of a process running MQTT
threads is not safe), numbered on from the previous shard, so device ids run ``emu-001`` … across the whole
fleet. Processes also let the fleet use every core: one process's agents share one GIL. A broker restart is
done by this process, the one that holds the broker.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
from dataclasses import dataclass, field, fields
from multiprocessing.context import SpawnProcess
from multiprocessing.synchronize import Event
from typing import Any

from devices.emulator import MAX_DEVICES_PER_PROCESS, Fleet
from devices.faults import BROKER_FAULTS
from edgefleet.errors import EdgefleetError, InputError

__all__ = ["ShardedFleet", "shard_sizes"]

log = logging.getLogger(__name__)


def shard_sizes(devices: int, per_process: int = MAX_DEVICES_PER_PROCESS) -> list[tuple[int, int]]:
    """(first index, devices) of each shard, as even as they can be."""
    shards = -(-devices // per_process)
    base, extra = divmod(devices, shards)
    sizes, first = [], 0
    for shard in range(shards):
        count = base + (1 if shard < extra else 0)
        sizes.append((first, count))
        first += count
    return sizes


def _run_shard(arguments: dict[str, Any], ready: Any, stop: Event) -> None:
    from edgefleet.logs import configure

    configure("WARNING")
    try:
        fleet = Fleet(**arguments)
        fleet.start()
    except EdgefleetError as err:
        ready.put(f"{err.message} ({err.hint})")
        return
    ready.put("")
    stop.wait()
    fleet.stop()


@dataclass
class ShardedFleet:
    """``fleet`` (its ``devices`` in all) run as shards of at most ``per_process`` devices, each in its own process.

    ``start`` returns once every shard has started its devices; raises EdgefleetError naming the first shard that
    could not (the others are stopped).
    """

    fleet: Fleet
    per_process: int = MAX_DEVICES_PER_PROCESS
    processes: list[SpawnProcess] = field(default_factory=list, init=False)
    _stop: Event | None = field(default=None, init=False)
    _faults_stop: threading.Event = field(default_factory=threading.Event, init=False)
    _restart: threading.Thread | None = field(default=None, init=False)

    def start(self, timeout_s: float = 600.0) -> None:
        context = multiprocessing.get_context("spawn")
        self._stop = context.Event()
        ready = context.Queue()
        # the shards do not hold the broker: this process restarts it
        injections = tuple("none" if n in BROKER_FAULTS else n for n in self.fleet.injections)
        for first, count in shard_sizes(self.fleet.devices, self.per_process):
            arguments = {f.name: getattr(self.fleet, f.name) for f in fields(self.fleet) if f.init}
            arguments.update(devices=count, first_index=first, injections=injections, broker=None)
            process = context.Process(
                target=_run_shard, args=(arguments, ready, self._stop), name=f"fleet-shard-{first}"
            )
            process.start()
            self.processes.append(process)
        errors = [ready.get(timeout=timeout_s) for _ in self.processes]
        failed = [e for e in errors if e]
        if failed:
            self.stop()
            raise InputError(f"a shard of the fleet could not start: {failed[0]}", hint="see the message above")
        broker = self.fleet.broker
        if broker is not None and set(self.fleet.injections) & set(BROKER_FAULTS):

            def _restart() -> None:
                if not self._faults_stop.wait(self.fleet.inject_after_s):
                    broker.restart(self.fleet.fault_s, self._faults_stop)

            self._restart = threading.Thread(target=_restart, name="fault-broker-restart", daemon=True)
            self._restart.start()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes if p.pid is not None]

    def stop(self, timeout_s: float = 60.0) -> None:
        """Stop every shard's devices (each reports, says offline and disconnects) and wait for the processes."""
        self._faults_stop.set()
        if self._restart is not None:
            self._restart.join(timeout_s)
        broker = self.fleet.broker
        if broker is not None and not broker.is_running:
            broker.start()
        if self._stop is not None:
            self._stop.set()
        for process in self.processes:
            process.join(timeout_s)
            if process.is_alive():
                log.warning("fleet.shard_still_running", extra={"shard": process.name})
                process.kill()
        self.processes.clear()

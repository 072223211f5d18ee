"""One emulated device as its own ``edgefleet-agent`` process, supervised and restarted like a systemd service.

A crash in the middle of an update can only be honest in a process of its own: the agent's failpoints
(``EDGEFLEET_FAILPOINT``, edge_agent.failpoints) kill the whole process with SIGKILL, with no cleanup, as a
power cut or the OOM killer would. The first run is armed at ``crash_at`` (an update step, e.g. ``staged`` or
``downloading@2``); when it dies, the supervisor starts it again unarmed, and the agent's journal must bring
the device back on a verified model. The emulator's in-process devices stay in-process.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr

from edge_agent import AgentSettings
from edge_agent.durable import write_atomic
from edge_agent.failpoints import ENV as FAILPOINT_ENV

__all__ = ["AgentProcess", "settings_toml"]

log = logging.getLogger(__name__)


def settings_toml(settings: AgentSettings) -> str:
    """``settings`` as the agent's TOML file, secrets (a provisioning token, a broker password) written out: keep the
    file to its owner."""
    data = _revealed(settings)
    top = [f"{key} = {_value(value)}" for key, value in data.items() if not isinstance(value, dict)]
    tables = [
        f"[{key}]\n" + "\n".join(f"{k} = {_value(v)}" for k, v in value.items() if not isinstance(v, dict))
        for key, value in data.items()
        if isinstance(value, dict)
    ]
    return "\n".join(top) + "\n\n" + "\n\n".join(tables) + "\n"


def _revealed(model: BaseModel) -> dict[str, Any]:
    """``model`` dumped as JSON data, its secrets as their values rather than pydantic's mask."""
    data = model.model_dump(mode="json", exclude_none=True)
    for name, value in model:
        if isinstance(value, SecretStr):
            data[name] = value.get_secret_value()
        elif isinstance(value, BaseModel):
            data[name] = _revealed(value)
    return data


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    # a JSON string is a TOML basic string for everything these settings hold (paths, ids, names)
    return json.dumps(str(value))


class AgentProcess:
    """Runs ``settings`` as an ``edgefleet-agent run`` process, the first run armed to die at ``crash_at``;
    ``wrap`` turns the command into the one that runs it elsewhere (inside a network namespace, devices.netns).

    ``start`` starts it and a supervisor thread, which starts it again (unarmed) each time it dies of a signal;
    ``restarts`` counts those. ``stop`` sends SIGTERM (the agent reports, says offline and exits).
    """

    def __init__(
        self,
        settings: AgentSettings,
        crash_at: str | None,
        wrap: Callable[[list[str]], list[str]] | None = None,
    ) -> None:
        self.settings = settings
        self._wrap = wrap or (lambda argv: argv)
        self.device_id = settings.device_id
        self.crash_at = crash_at
        self.restarts = 0
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.config = settings.data_dir.parent / f"{settings.device_id}.toml"
        write_atomic(self.config, settings_toml(settings).encode(), 0o600)
        self._process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._supervisor = threading.Thread(target=self._supervise, name=f"supervise-{self.device_id}", daemon=True)

    def start(self) -> None:
        self._spawn(armed=self.crash_at is not None)
        self._supervisor.start()

    def stop(self, timeout_s: float = 15.0) -> None:
        self._stopping.set()
        with self._lock:
            process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout_s)
        self._supervisor.join(timeout_s)

    def kill(self) -> None:
        """SIGKILL the running process, as a power cut would; the supervisor starts it again."""
        with self._lock:
            process = self._process
        if process is not None and process.poll() is None:
            process.kill()

    def _spawn(self, *, armed: bool) -> None:
        env = {k: v for k, v in os.environ.items() if k != FAILPOINT_ENV}
        if armed and self.crash_at is not None:
            env[FAILPOINT_ENV] = self.crash_at
        log_file = self.config.with_name(f"{self.device_id}-{self.restarts}.log")
        with log_file.open("wb") as stderr:
            process = subprocess.Popen(
                self._wrap([str(Path(sys.executable).parent / "edgefleet-agent"), "run", "--config", str(self.config)]),
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env=env,
            )
        with self._lock:
            self._process = process
        log.info("fleet.process_started", extra={"device": self.device_id, "armed": armed, "pid": process.pid})

    def _supervise(self) -> None:
        while not self._stopping.is_set():
            with self._lock:
                process = self._process
            if process is None:
                return
            code = process.wait()
            if self._stopping.is_set():
                return
            log.warning("fleet.process_died", extra={"device": self.device_id, "returncode": code})
            if code >= 0:
                return  # it exited on its own (a bad configuration): restarting would only repeat that
            self.restarts += 1
            self._spawn(armed=False)

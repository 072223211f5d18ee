"""The agent: runs the installed model on its input source and reports one telemetry message per interval."""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
import numpy.typing as npt

from edge_agent.model import LoadedModel, install_package, load_model
from edge_agent.mqtt import Link
from edge_agent.sequence import Sequences
from edge_agent.settings import AgentSettings
from edge_agent.sources import SimulatedSensor
from edge_agent.system import SystemProbe
from edge_agent.telemetry import IntervalStats
from edgefleet.errors import ConfigError, EdgefleetError
from edgefleet.messages import EventKind
from edgefleet.preprocess import prepare_sensor_windows
from edgefleet.signing import load_public_keys
from edgefleet.topics import TopicKind

__all__ = ["Agent"]

log = logging.getLogger(__name__)


class Agent:
    """One device: ``start`` installs and loads the model and connects, ``run`` serves until ``stop``."""

    def __init__(self, settings: AgentSettings) -> None:
        self.settings = settings
        self._stop = threading.Event()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.link = Link(
            settings.device_id, settings.profile, settings.broker, Sequences(settings.data_dir / "seq.json")
        )
        self._probe = SystemProbe()
        self._model: LoadedModel | None = None

    @property
    def model(self) -> LoadedModel:
        if self._model is None:
            raise ConfigError("the agent has no model loaded", hint="call start() first")
        return self._model

    def start(self) -> None:
        """Install and load the configured package, then connect; raises EdgefleetError when it cannot."""
        if self.settings.package is None:
            raise ConfigError("no package to run", hint="set `package` in the agent's TOML file")
        trusted = load_public_keys(self.settings.trusted_keys)
        opened = install_package(self.settings.package, self.settings.data_dir / "slots" / "a", trusted)
        self._model = load_model(opened, self.settings.threads)
        self.link.start(self._model.active)
        package = f"{self._model.active.name}@{self._model.active.version}"
        self.link.publish_event(EventKind.ACTIVE, package=package, detail=f"running {self._model.artifact.path}")
        log.info("agent.started", extra={"device": self.settings.device_id, "package": package})

    def infer(self, window: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """The model's probabilities for one raw window."""
        model = self.model
        if model.manifest.preprocessing.kind != "sensor":
            raise ConfigError("this agent version runs sensor models only", hint="update the agent")
        batch = prepare_sensor_windows(window, model.manifest.preprocessing)
        outputs = model.backend.run({model.backend.input_names[0]: batch})
        return np.asarray(outputs[0][0], dtype=np.float32)

    def run(self, max_windows: int | None = None) -> int:
        """Serve windows from the source until ``stop`` (or ``max_windows``); returns how many were served."""
        source = SimulatedSensor(
            self.settings.source.fault, self.settings.source.seed, self.settings.source.windows_per_s, self._stop
        )
        stats = IntervalStats(self.model.manifest)
        interval_start = time.monotonic()
        served = 0
        for window in source:
            started = time.perf_counter()
            try:
                probabilities = self.infer(window)
            except EdgefleetError as err:
                stats.errors += 1
                log.warning("agent.inference_failed", extra={"error": err.message})
            else:
                stats.add(window, probabilities, (time.perf_counter() - started) * 1000)
            served += 1
            if time.monotonic() - interval_start >= self.settings.telemetry_interval_s:
                self._report(stats, time.monotonic() - interval_start)
                stats, interval_start = IntervalStats(self.model.manifest), time.monotonic()
            if max_windows is not None and served >= max_windows:
                break
        self._report(stats, max(time.monotonic() - interval_start, 1e-3))
        return served

    def stop(self) -> None:
        """Ask ``run`` to finish its interval and return; safe from any thread."""
        self._stop.set()

    def close(self) -> None:
        """Say offline and disconnect."""
        self.link.close()

    def _report(self, stats: IntervalStats, interval_s: float) -> None:
        message = stats.message(
            self.settings.device_id,
            self.link.next_seq(TopicKind.TELEMETRY),
            time.time(),
            interval_s,
            self.model.active,
            self._probe.read(),
        )
        self.link.publish_telemetry(message)
        log.debug("agent.telemetry", extra={"inferences": message.inference_count, "seq": message.seq})

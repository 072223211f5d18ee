"""The agent: runs the installed model on its input source and reports one telemetry message per interval."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from edge_agent.backends import Backend
from edge_agent.model import LoadedModel, install_package, load_model
from edge_agent.mqtt import Link
from edge_agent.sequence import Sequences
from edge_agent.settings import AgentSettings
from edge_agent.sources import SimulatedSensor, Source
from edge_agent.system import SystemProbe
from edge_agent.telemetry import IntervalAggregator, Prediction, ReportContext
from edgefleet.errors import AgentError, ConfigError, EdgefleetError
from edgefleet.manifest import SensorPreprocessing
from edgefleet.messages import EventKind
from edgefleet.preprocess import prepare_sensor_windows
from edgefleet.signing import load_public_keys
from edgefleet.topics import TopicKind

__all__ = ["Agent", "as_probabilities"]

log = logging.getLogger(__name__)

# slot "b" arrives with updates; until then the package always goes into "a"
_SLOT = "a"


class Agent:
    """One device: ``start`` installs and loads the model and connects, ``run`` serves until ``stop``.

    ``wrap_backend`` lets the fleet emulator put a device profile's speed around the real backend.
    """

    def __init__(self, settings: AgentSettings, *, wrap_backend: Callable[[Backend], Backend] | None = None) -> None:
        self.settings = settings
        self._wrap_backend = wrap_backend
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
            raise AgentError("the agent has no model loaded", hint="call load() or start() first")
        return self._model

    def load(self) -> LoadedModel:
        """Install the configured package into its slot and load it, without the network; raises EdgefleetError."""
        if self.settings.package is None:
            raise ConfigError("no package to run", hint="set `package` in the agent's TOML file")
        trusted = load_public_keys(self.settings.trusted_keys)
        opened = install_package(self.settings.package, self.settings.data_dir / "slots" / _SLOT, trusted)
        model = load_model(opened, self.settings.threads)
        if not isinstance(model.manifest.preprocessing, SensorPreprocessing):
            raise AgentError(
                f"{model.manifest.name} takes images; this agent version feeds sensor windows only",
                hint="update the agent, or run a sensor model on this device",
            )
        if self._wrap_backend is not None:
            model = LoadedModel(model.manifest, model.artifact, self._wrap_backend(model.backend), model.active)
        self._model = model
        return model

    def start(self) -> None:
        """Load the model (unless ``load`` did), connect and say online; raises EdgefleetError when it cannot."""
        model = self._model or self.load()
        self.link.start(model.active)
        package = f"{model.active.name}@{model.active.version}"
        self.link.publish_event(EventKind.ACTIVE, package=package, detail=f"running {model.artifact.path}")
        log.info("agent.started", extra={"device": self.settings.device_id, "package": package, "slot": _SLOT})

    def infer(self, window: npt.NDArray[np.float32]) -> Prediction:
        """The model's answer for one raw window (channels, length); raises EdgefleetError when it cannot."""
        model = self.model
        started = time.perf_counter()
        # load() refuses every other kind, so this holds; the check keeps mypy and `python -O` honest
        if not isinstance(model.manifest.preprocessing, SensorPreprocessing):
            raise AgentError("the loaded model does not take sensor windows", hint="load a sensor model")
        batch = prepare_sensor_windows(window, model.manifest.preprocessing)
        outputs = model.backend.run({model.manifest.inputs[0].name: batch})
        probabilities = as_probabilities(outputs[model.manifest.outputs[0].name][0])
        if not np.isfinite(probabilities).all():
            raise AgentError("the model answered NaN or infinity", hint="check the input window and the model")
        label = int(probabilities.argmax())
        return Prediction(label, float(probabilities[label]), (time.perf_counter() - started) * 1000)

    def run(self, max_windows: int | None = None, source: Source | None = None) -> int:
        """Serve windows from ``source`` (the configured one by default) until ``stop`` or ``max_windows``.

        Publishes one telemetry message per interval and one for the last, partial interval; returns how
        many windows were served.
        """
        source = source or SimulatedSensor(self.settings.source, self._stop)
        context = ReportContext(self.settings.device_id, self.model.active)
        aggregator = IntervalAggregator(self.model.manifest)
        interval_start, dropped = time.monotonic(), source.dropped
        served = 0
        log.info("agent.serving", extra={"device": self.settings.device_id, "max_windows": max_windows})
        for window in source:
            self.link.poll()
            try:
                aggregator.add(window, self.infer(window))
            except EdgefleetError as err:
                aggregator.errors += 1
                log.warning("agent.inference_failed", extra={"device": self.settings.device_id, "error": err.message})
            served += 1
            if time.monotonic() - interval_start >= self.settings.telemetry_interval_s:
                aggregator.drops, dropped = source.dropped - dropped, source.dropped
                self._report(aggregator, context, time.monotonic() - interval_start)
                aggregator, interval_start = IntervalAggregator(self.model.manifest), time.monotonic()
            if max_windows is not None and served >= max_windows:
                break
        aggregator.drops = source.dropped - dropped
        # an interval cut short by stop still has a positive length, which the schema requires
        self._report(aggregator, context, max(time.monotonic() - interval_start, 1e-3))
        log.info("agent.stopped", extra={"device": self.settings.device_id, "served": served})
        return served

    def stop(self) -> None:
        """Ask ``run`` to report its interval and return; safe from any thread and from signal handlers."""
        self._stop.set()

    def close(self) -> None:
        """Say offline and disconnect."""
        self.link.close()

    def _report(self, aggregator: IntervalAggregator, context: ReportContext, interval_s: float) -> None:
        message = aggregator.message(
            context,
            seq=self.link.next_seq(TopicKind.TELEMETRY),
            ts=time.time(),
            interval_s=interval_s,
            system=self._probe.read(),
        )
        self.link.publish_telemetry(message)
        log.debug("agent.telemetry", extra={"inferences": message.inference_count, "seq": message.seq})


def as_probabilities(output: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """A classifier's output row as probabilities: kept when it already is a distribution, else softmaxed.

    The manifest does not say which a model emits: edgefleet's export bakes the softmax in, while models
    brought from elsewhere often end in logits.
    """
    row = np.asarray(output, dtype=np.float32).ravel()
    # an int8 model's probabilities are quantized and can sum to a few hundredths off 1
    if row.size and row.min() >= 0.0 and row.max() <= 1.0 and abs(float(row.sum()) - 1.0) < 0.05:
        return row
    shifted = np.exp(row - row.max())  # minus the max: exp cannot overflow
    return np.asarray(shifted / shifted.sum(), dtype=np.float32)

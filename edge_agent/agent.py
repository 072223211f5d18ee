"""The agent: runs the installed model on its input source and reports one telemetry message per interval."""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from edge_agent.backends import Backend
from edge_agent.feeder import Feeder
from edge_agent.model import LoadedModel, check_profile, load_model
from edge_agent.mqtt import Link
from edge_agent.outbox import OUTBOX_FILE, Outbox
from edge_agent.reservoir import Picker, Reservoir, true_label
from edge_agent.sample_upload import SampleUploader
from edge_agent.sequence import SEQ_FILE, Sequences
from edge_agent.settings import AgentSettings
from edge_agent.sources import Source, open_source
from edge_agent.sources.settings import SimulatedSourceSettings
from edge_agent.system import SystemProbe
from edge_agent.telemetry import IntervalAggregator, Prediction, ReportContext
from edge_agent.trust import key_ring
from edge_agent.updates import HealthWindow, Slot, Updater, Vitals
from edgefleet.errors import AgentError, EdgefleetError, KeyListError
from edgefleet.messages import (
    AssignCommand,
    ConfigureCommand,
    EventKind,
    KeysCommand,
    RollbackCommand,
    UploadSamplesCommand,
)
from edgefleet.package import OpenedPackage
from edgefleet.preprocess import InputPreparer
from edgefleet.topics import TopicKind

__all__ = ["Agent", "as_probabilities"]

log = logging.getLogger(__name__)


class Agent:
    """One device: ``start`` loads the model and connects, ``run`` serves until ``stop``; updates arrive as
    commands and run on the updater's thread, which hands the agent a new model between two inputs.

    ``wrap_backend`` lets the fleet emulator put a device profile's speed around the real backend.
    """

    def __init__(self, settings: AgentSettings, *, wrap_backend: Callable[[Backend], Backend] | None = None) -> None:
        self.settings = settings
        self._wrap_backend = wrap_backend
        self._stop = threading.Event()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        outbox = Outbox(
            settings.data_dir / OUTBOX_FILE,
            max_messages=settings.broker.outbox_max_messages,
            max_bytes=settings.broker.outbox_max_bytes,
        )
        self.keys = key_ring(settings)
        self.link = Link(
            settings.device_id,
            settings.profile,
            settings.broker,
            Sequences(settings.data_dir / SEQ_FILE, outbox.numbered()),
            outbox,
            keys_version=lambda: self.keys.version,
        )
        self._probe = SystemProbe()
        self._model: LoadedModel | None = None
        self._prepare: InputPreparer | None = None
        self.vitals = Vitals()
        self.updater: Updater | None = None
        self._interval_s = settings.telemetry_interval_s
        # a model the updater switched to while run() serves: run() installs it between two batches
        self._switch_lock = threading.Lock()
        self._serving = False
        self._pending: tuple[LoadedModel, HealthWindow | None] | None = None
        # drifted and low-confidence inputs the server can pull for retraining
        self.reservoir = Reservoir(settings.data_dir / "reservoir", settings.reservoir)
        self._picker: Picker | None = None
        self._reservoir_failing = False
        token = settings.updates.auth_token.get_secret_value() if settings.updates.auth_token is not None else None
        self._uploader = SampleUploader(
            self.reservoir,
            token,
            lambda detail: self.link.publish_event(EventKind.ERROR, package=None, detail=detail),
            settings.device_id,
        )

    @property
    def model(self) -> LoadedModel:
        if self._model is None:
            raise AgentError("the agent has no model loaded", hint="call load() or start() first")
        return self._model

    def load(self) -> LoadedModel:
        """Load the model of the active slot (installing the configured package on a first start), completing or
        rolling back an update a crash interrupted, without the network; raises EdgefleetError."""
        self.updater = Updater(self.settings, self.keys, self)
        model = self.updater.boot()
        self._install(model, None)
        return model

    def load_package(self, opened: OpenedPackage, slot: Slot) -> LoadedModel:
        """Load an installed package with the real runtime, smoke-tested, as this device will serve it."""
        check_profile(opened.manifest, self.settings.profile)
        model = load_model(opened, self.settings.threads, slot, self.settings.runtimes)
        if self._wrap_backend is not None:
            model = LoadedModel(model.manifest, model.artifact, self._wrap_backend(model.backend), model.active)
        return model

    def current(self) -> LoadedModel | None:
        """The model serving, or the one about to serve from the next input on."""
        with self._switch_lock:
            return self._pending[0] if self._pending is not None else self._model

    def switch(self, model: LoadedModel, window: HealthWindow | None) -> None:
        """Serve ``model`` from the next input on (at once when not serving), watched by ``window``."""
        with self._switch_lock:
            if self._serving:
                self._pending = (model, window)
                return
        self._install(model, window)

    def publish(
        self, kind: EventKind, *, package: str | None, detail: str, rollout_id: str | None, reason: str | None
    ) -> None:
        self.link.publish_event(kind, package=package, detail=detail, rollout_id=rollout_id, reason=reason)

    def _install(self, model: LoadedModel, window: HealthWindow | None) -> None:
        self._model = model
        self._prepare = InputPreparer(model.manifest.preprocessing)
        self._picker = self._new_picker(model)
        self.vitals.restart(window)
        self.link.set_model(model.active)

    def start(self) -> None:
        """Load the model (unless ``load`` did), connect and say online; raises EdgefleetError when it cannot.

        A package this device must not or cannot run is reported as an error event before the error is raised,
        so the fleet sees why the device has no model.
        """
        try:
            model = self._model or self.load()
        except EdgefleetError as err:
            self.link.start(None)
            self.link.publish_event(EventKind.ERROR, package=None, detail=f"{err.message} ({err.hint})")
            log.error("agent.load_refused", extra={"device": self.settings.device_id, "error": err.message})
            raise
        self.link.start(model.active)
        package = f"{model.active.name}@{model.active.version}"
        self.link.publish_event(EventKind.ACTIVE, package=package, detail=f"running {model.artifact.path}")
        log.info("agent.started", extra={"device": self.settings.device_id, "package": package})
        if self.updater is not None:
            self.updater.start()

    def infer(self, window: npt.NDArray[np.generic]) -> Prediction:
        """The model's answer for one raw input (a sensor window or an image); raises EdgefleetError."""
        return self.infer_batch([window])[0]

    def infer_batch(self, inputs: list[npt.NDArray[np.generic]]) -> list[Prediction]:
        """The model's answers for raw inputs, in one run when the model takes batches; raises EdgefleetError.

        Each answer carries the latency of the run it was part of: what a caller waited for it.
        """
        model, prepare = self.model, self._prepare
        if prepare is None:
            raise AgentError("the agent has no model loaded", hint="call load() or start() first")
        started = time.perf_counter()
        # the inputs go into the preparer's reused buffer for their count, which stays bound to the runtime
        batch = prepare.many(inputs)
        feed, output = model.manifest.inputs[0].name, model.manifest.outputs[0].name
        if len(batch) == 1 or model.manifest.inputs[0].shape[0] is None:
            rows = model.backend.run({feed: batch})[output]
        else:
            rows = np.concatenate([model.backend.run({feed: batch[i : i + 1]})[output] for i in range(len(batch))])
        latency_ms = (time.perf_counter() - started) * 1000
        return [_prediction(row, latency_ms) for row in rows.reshape(len(rows), -1)]

    def run(self, max_windows: int | None = None, source: Source[Any] | None = None) -> int:
        """Serve inputs from ``source`` (the configured one by default) until ``stop``, its end or ``max_windows``.

        The source fills a bounded queue on its own thread (what does not fit is dropped and counted); the
        model takes up to ``batch_size`` queued inputs per run. One telemetry message per interval, idle
        or not, and one for the last, partial interval; returns how many inputs were served.
        """
        if source is None:
            source = open_source(self.settings.source, self.model.manifest.preprocessing, self._stop)
        feeder = Feeder(source, self.settings.queue_size, self._stop)
        context = ReportContext(self.settings.device_id, self.model.active)
        aggregator = IntervalAggregator(self.model.manifest)
        interval_start, dropped = time.monotonic(), 0
        # reports fall due on a fixed beat, not an interval after the last one went out: the loop notices a due
        # report only between batches, and restarting the clock then would stretch every interval by that delay.
        # The beat's phase is random: devices powered on together (a line after an outage, an emulated fleet)
        # would otherwise report in the same second, every interval, for good
        report_at = interval_start + self._interval_s * (0.5 + random.random())  # noqa: S311 (not a secret)
        served = 0
        told = _SourceProblems()
        log.info("agent.serving", extra={"device": self.settings.device_id, "max_windows": max_windows})
        with self._switch_lock:
            self._serving = True
        feeder.start()
        for batch in feeder.batches(self.settings.batch_size, min(0.5, self._interval_s)):
            self.link.poll()
            self._take_commands()
            if self._pending is not None:
                # the old model's partial interval is reported under its own name before the new one serves
                self._report(aggregator, context, max(time.monotonic() - interval_start, 1e-3))
                self._install_pending()
                context = ReportContext(self.settings.device_id, self.model.active)
                aggregator, interval_start = IntervalAggregator(self.model.manifest), time.monotonic()
                report_at = interval_start + self._interval_s
            if max_windows is not None:
                batch = batch[: max_windows - served]
            if batch:
                self._serve(batch, aggregator)
                served += len(batch)
            now = time.monotonic()
            if now >= report_at:
                self._tell_source_problems(source, told)
                aggregator.drops, dropped = feeder.dropped - dropped, feeder.dropped
                self._report(aggregator, context, now - interval_start)
                aggregator, interval_start = IntervalAggregator(self.model.manifest), now
                report_at += self._interval_s
                if report_at <= now:  # a whole interval behind (suspended, starved): a new beat from now
                    report_at = now + self._interval_s
            if max_windows is not None and served >= max_windows:
                break
        self._stop.set()
        feeder.join(timeout_s=2.0)
        self._tell_source_problems(source, told)
        aggregator.drops = feeder.dropped - dropped
        # an interval cut short by stop still has a positive length, which the schema requires
        self._report(aggregator, context, max(time.monotonic() - interval_start, 1e-3))
        with self._switch_lock:
            self._serving = False
        self._install_pending()
        log.info("agent.stopped", extra={"device": self.settings.device_id, "served": served})
        return served

    def _install_pending(self) -> None:
        with self._switch_lock:
            pending, self._pending = self._pending, None
        if pending is not None:
            self._install(*pending)

    def _take_commands(self) -> None:
        """Hand update commands to the updater; apply configuration at once."""
        for message in self.link.commands():
            command = message.command
            if isinstance(command, ConfigureCommand):
                if command.telemetry_interval_s is not None:
                    self._interval_s = command.telemetry_interval_s
                    log.info("agent.configured", extra={"telemetry_interval_s": self._interval_s})
            elif isinstance(command, UploadSamplesCommand):
                self._uploader.submit(command)
            elif isinstance(command, KeysCommand):
                self._adopt_keys(command)
            elif self.updater is not None and isinstance(command, AssignCommand | RollbackCommand):
                self.updater.submit(command)

    def _adopt_keys(self, command: KeysCommand) -> None:
        try:
            adopted = self.keys.offer(command.key_list)
        except KeyListError as err:
            detail = f"key list refused: {err.message}"
            self.link.publish_event(EventKind.ERROR, package=None, detail=detail)
            log.warning("agent.key_list_refused", extra={"device": self.settings.device_id, "error": err.message})
            return
        if adopted:
            self.link.announce()

    def _tell_source_problems(self, source: Source[Any], told: _SourceProblems) -> None:
        """An error event for each new loss of the input device and for lines that did not parse since the last.

        Only hardware sources report these (cameras and serial ports have ``losses``, serial ports
        ``bad_lines``); the agent keeps serving whatever still arrives.
        """
        losses = getattr(source, "losses", None)
        if losses is not None and losses.count > told.losses:
            told.losses = losses.count
            reason = losses.last.message if losses.last is not None else "the input device failed"
            detail = f"input lost ({losses.count} times so far; reconnecting): {reason}"
            self.link.publish_event(EventKind.ERROR, package=None, detail=detail)
            log.warning("agent.input_lost", extra={"device": self.settings.device_id, "detail": detail})
        bad_lines = getattr(source, "bad_lines", 0)
        if bad_lines > told.bad_lines:
            detail = f"{bad_lines - told.bad_lines} input lines did not parse and were skipped ({bad_lines} so far)"
            told.bad_lines = bad_lines
            self.link.publish_event(EventKind.ERROR, package=None, detail=detail)
            log.warning("agent.input_unparsed", extra={"device": self.settings.device_id, "detail": detail})

    def _serve(self, batch: list[npt.NDArray[np.generic]], aggregator: IntervalAggregator) -> None:
        try:
            predictions = self.infer_batch(batch)
        except EdgefleetError as err:
            aggregator.errors += len(batch)
            self.vitals.record(0, len(batch), None)
            log.warning("agent.inference_failed", extra={"device": self.settings.device_id, "error": err.message})
            return
        self.vitals.record(len(predictions), 0, predictions[0].latency_ms)
        picker = self._picker
        for item, prediction in zip(batch, predictions, strict=True):
            aggregator.add(item, prediction)
            if picker is not None:
                picker.offer(item, prediction)

    def stop(self) -> None:
        """Ask ``run`` to report its interval and return; safe from any thread and from signal handlers."""
        self._stop.set()

    def close(self) -> None:
        """Stop the updater after its current step, send what the outbox holds (for a few seconds at most), say
        offline and disconnect."""
        if self.updater is not None:
            self.updater.stop()
        self._uploader.join(timeout_s=10.0)
        self.link.close()

    def _new_picker(self, model: LoadedModel) -> Picker | None:
        if not self.settings.reservoir.enabled:
            return None
        labels = model.manifest.labels
        self.reservoir.label_names = list(labels)
        # a simulated source knows the fault it simulates: its samples carry the true label, so CI closes the loop
        source = self.settings.source
        fault = source.fault if isinstance(source, SimulatedSourceSettings) else None
        return Picker(model.manifest, self.settings.reservoir, self.reservoir, true_label(fault, labels))

    def _keep_samples(self) -> None:
        """Check the inputs waiting for the reference range, and write the interval's picks to disk."""
        if self._picker is not None:
            self._picker.check_pending()
        try:
            self.reservoir.flush()
        except OSError as err:
            if not self._reservoir_failing:  # once, not every interval the disk stays full
                detail = f"samples for retraining cannot be kept: the disk is full or unwritable ({err})"
                self.link.publish_event(EventKind.ERROR, package=None, detail=detail)
                log.warning("agent.reservoir_unwritable", extra={"device": self.settings.device_id, "error": str(err)})
            self._reservoir_failing = True
            return
        self._reservoir_failing = False

    def _report(self, aggregator: IntervalAggregator, context: ReportContext, interval_s: float) -> None:
        self._keep_samples()
        message = aggregator.message(
            context,
            seq=self.link.next_seq(TopicKind.TELEMETRY),
            ts=time.time(),
            interval_s=interval_s,
            system=self._probe.read(),
        )
        self.link.publish_telemetry(message)
        log.debug("agent.telemetry", extra={"inferences": message.inference_count, "seq": message.seq})


@dataclass(slots=True)
class _SourceProblems:
    """How many input losses and unparsed lines the fleet has been told of."""

    losses: int = 0
    bad_lines: int = 0


def _prediction(row: npt.NDArray[np.float32], latency_ms: float) -> Prediction:
    """The answer in one output row; raises AgentError when the model answered NaN or infinity."""
    values = row.tolist()
    # the common case in plain Python, cheaper than numpy calls on a classifier's few values: a distribution is
    # kept as it is, by as_probabilities' rule. NaN fails no comparison with min and max but makes the sum NaN;
    # whatever else, or a row with NaN or infinity, takes the general path below
    if values and min(values) >= 0.0 and max(values) <= 1.0:
        total = math.fsum(values)
        if math.isfinite(total) and abs(total - 1.0) < 0.05:
            label = values.index(max(values))  # the first of equal maxima, as argmax
            return Prediction(label, values[label], latency_ms)
    probabilities = as_probabilities(row)
    if not np.isfinite(probabilities).all():
        raise AgentError("the model answered NaN or infinity", hint="check the input and the model")
    label = int(probabilities.argmax())
    return Prediction(label, float(probabilities[label]), latency_ms)


def as_probabilities(output: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """A classifier's output row as probabilities: kept when it already is a distribution, else softmaxed.

    The manifest does not say which a model emits: edgefleet's export bakes the softmax in, while models
    brought from elsewhere often end in logits.
    """
    row = np.asarray(output, dtype=np.float32).ravel()
    # an int8 model's probabilities are quantized and can sum to a few hundredths off 1
    if row.size and row.min() >= 0.0 and row.max() <= 1.0 and abs(math.fsum(row.tolist()) - 1.0) < 0.05:
        return row
    shifted = np.exp(row - row.max())  # minus the max: exp cannot overflow
    return np.asarray(shifted / shifted.sum(), dtype=np.float32)

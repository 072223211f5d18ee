"""A bounded sample of drifted and low-confidence inputs, kept on disk for the server to pull for retraining.

Selection: an input is a candidate when the model answered with less than ``min_confidence``, or when one of
its drift features (``edgefleet.sketch``, the ones the reference profile bins) lies outside the range the
reference data covered. Confidence is checked at once (one comparison); features only for the inputs that
passed it, gathered and computed in batches, so the per-inference cost stays a list append.

Sampling: Algorithm R (Vitter) over the candidates, a uniform sample of everything picked since the last
upload. Keeping the least confident instead would fill the reservoir with the strangest inputs (a loose
cable, a dark frame) and forget an early drift; fine-tuning needs a picture of the shifted data as it is.

Disk: one ``.npz`` per slot and a ``state.json`` (how many candidates were seen), written with
``durable.write_atomic`` when the agent reports an interval, so picks survive a restart (those of the last
interval at most are lost to a power cut). Bounded by ``max_count`` and by ``max_bytes`` of raw inputs.
"""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from edge_agent.durable import write_atomic
from edge_agent.settings import ReservoirSettings
from edge_agent.telemetry import Prediction
from edgefleet.manifest import Manifest
from edgefleet.samples import NO_LABEL, SampleSet, encode_samples
from edgefleet.sketch import image_features, sensor_features

__all__ = ["NO_LABEL", "Picker", "Reservoir", "SampleBatch", "true_label"]

log = logging.getLogger(__name__)

_STATE_FILE: Final = "state.json"
_RANGE_BATCH: Final = 32  # inputs whose features are computed together
_UPLOAD_OVERHEAD_BYTES: Final = 64 * 1024  # the .npz headers and the small per-sample arrays, generously


@dataclass(frozen=True, slots=True)
class _Sample:
    raw: npt.NDArray[np.generic]
    label: int
    predicted: int
    confidence: float
    ts: float
    reason: str
    model: str


@dataclass(frozen=True, slots=True)
class SampleBatch:
    """One upload: the .npz bytes and how many samples they hold."""

    payload: bytes
    count: int


class Reservoir:
    """Up to ``max_count`` candidates (and ``max_bytes`` of raw inputs) in ``folder``, by Algorithm R.

    ``add`` runs on the inference thread, ``take`` and ``clear`` on the upload thread: a lock keeps them apart.
    """

    def __init__(self, folder: Path, settings: ReservoirSettings, seed: int = 0) -> None:
        self._folder = folder
        self._settings = settings
        self.label_names: list[str] = []  # the serving model's, sent with the samples
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()
        self._dirty: dict[int, _Sample] = {}
        self._state_dirty = False
        folder.mkdir(parents=True, exist_ok=True)
        self._seen, self._size, self._shape, self._dtype = self._load_state()

    @property
    def count(self) -> int:
        """Samples kept (on disk or about to be written)."""
        return self._size

    @property
    def seen(self) -> int:
        """Candidates offered since the reservoir was last emptied."""
        return self._seen

    def add(self, raw: npt.NDArray[np.generic], prediction: Prediction, label: int, reason: str, model: str) -> None:
        """Offer one candidate: kept with probability capacity / seen (at once while there is room)."""
        with self._lock:
            if self._shape is not None and (raw.shape != self._shape or raw.dtype != self._dtype):
                # another model's inputs: one upload holds inputs of one shape, and the new model's are what matter
                log.info("reservoir.reset", extra={"old_shape": self._shape, "new_shape": raw.shape})
                self._clear_locked()
            capacity = min(self._settings.max_count, self._settings.max_bytes // max(raw.nbytes, 1))
            if capacity == 0:
                return
            self._shape, self._dtype = raw.shape, raw.dtype
            self._seen += 1
            slot = self._size if self._size < capacity else int(self._rng.integers(self._seen))
            if slot >= capacity:
                return
            self._dirty[slot] = _Sample(
                np.array(raw, copy=True), label, prediction.label, prediction.confidence, time.time(), reason, model
            )
            self._size = max(self._size, slot + 1)
            self._state_dirty = True

    def flush(self) -> None:
        """Write the picks made since the last flush; raises OSError (a full disk: they stay in memory)."""
        with self._lock:
            self._flush_locked()

    def take(self, max_count: int, max_bytes: int) -> SampleBatch | None:
        """The kept samples as one .npz (a random subset when more than ``max_count`` or ``max_bytes`` allow), or
        None when there are none; raises OSError when they cannot be read."""
        with self._lock:
            self._flush_locked()
            if self._size == 0 or self._shape is None or self._dtype is None:
                return None
            per_sample = int(np.prod(self._shape)) * np.dtype(self._dtype).itemsize
            fitting = max(0, (max_bytes - _UPLOAD_OVERHEAD_BYTES) // per_sample)
            count = min(self._size, max_count, fitting)
            if count == 0:
                return None
            chosen = np.sort(self._rng.choice(self._size, size=count, replace=False))
            samples = [self._read(int(slot)) for slot in chosen]
        return SampleBatch(self._encode(samples), count)

    def clear(self) -> None:
        """Forget every sample (after an upload the server acknowledged): the next ones are picked afresh."""
        with self._lock:
            self._clear_locked()

    def _clear_locked(self) -> None:
        # removing needs no free space; the state follows at the next flush, and a restart before it finds
        # the slots gone, which ends the reservoir there
        for path in self._folder.glob("*.npz"):
            path.unlink(missing_ok=True)
        self._dirty.clear()
        self._seen, self._size, self._shape, self._dtype = 0, 0, None, None
        self._state_dirty = True

    def _flush_locked(self) -> None:
        if not self._state_dirty:
            return
        for slot, sample in sorted(self._dirty.items()):
            write_atomic(self._slot_path(slot), _sample_bytes(sample))
            del self._dirty[slot]
        state = {
            "seen": self._seen,
            "size": self._size,
            "shape": list(self._shape or ()),
            "dtype": str(np.dtype(self._dtype)) if self._dtype is not None else None,
        }
        write_atomic(self._folder / _STATE_FILE, json.dumps(state).encode())
        self._state_dirty = False

    def _load_state(self) -> tuple[int, int, tuple[int, ...] | None, np.dtype[np.generic] | None]:
        try:
            state = json.loads((self._folder / _STATE_FILE).read_bytes())
            seen, size = int(state["seen"]), int(state["size"])
            shape = tuple(int(n) for n in state.get("shape") or ()) or None
            dtype = np.dtype(state["dtype"]) if state.get("dtype") else None
        except (OSError, ValueError, KeyError, TypeError):
            return 0, 0, None, None
        # a slot the last flush did not reach (a power cut) ends the reservoir there
        present = 0
        while present < size and self._slot_path(present).is_file():
            present += 1
        return max(seen, present), present, shape, dtype

    def _slot_path(self, slot: int) -> Path:
        return self._folder / f"{slot:06d}.npz"

    def _read(self, slot: int) -> _Sample:
        if slot in self._dirty:
            return self._dirty[slot]
        with np.load(self._slot_path(slot), allow_pickle=False) as data:
            return _Sample(
                data["raw"],
                int(data["label"]),
                int(data["predicted"]),
                float(data["confidence"]),
                float(data["ts"]),
                str(data["reason"]),
                str(data["model"]),
            )

    def _encode(self, samples: list[_Sample]) -> bytes:
        return encode_samples(
            SampleSet(
                inputs=np.stack([s.raw for s in samples]),
                labels=np.array([s.label for s in samples], dtype=np.int64),
                predictions=np.array([s.predicted for s in samples], dtype=np.int64),
                confidences=np.array([s.confidence for s in samples], dtype=np.float32),
                ts=np.array([s.ts for s in samples], dtype=np.float64),
                reasons=np.array([s.reason for s in samples], dtype=np.str_),
                models=np.array([s.model for s in samples], dtype=np.str_),
                label_names=tuple(self.label_names),
            )
        )


def _sample_bytes(sample: _Sample) -> bytes:
    buffer = io.BytesIO()
    np.savez(
        buffer,
        raw=sample.raw,
        label=np.int64(sample.label),
        predicted=np.int64(sample.predicted),
        confidence=np.float32(sample.confidence),
        ts=np.float64(sample.ts),
        reason=np.str_(sample.reason),
        model=np.str_(sample.model),
    )
    return buffer.getvalue()


class Picker:
    """Which inputs of one model become candidates, and why; feeds them to a Reservoir.

    ``offer`` is the hot path: one comparison for a confident answer, and a list append when the range of its
    features must be checked; the features are computed for ``_RANGE_BATCH`` inputs at a time.
    """

    def __init__(self, manifest: Manifest, settings: ReservoirSettings, reservoir: Reservoir, label: int) -> None:
        self._reservoir = reservoir
        self._min_confidence = settings.min_confidence
        self._label = label
        self._model = f"{manifest.name}@{manifest.version}"
        self._kind = manifest.preprocessing.kind
        self._channels: tuple[str, ...] = (
            tuple(c.name for c in manifest.preprocessing.channels) if manifest.preprocessing.kind == "sensor" else ()
        )
        reference = manifest.reference_profile
        features = reference.features if reference is not None and settings.out_of_range else []
        self._ranges = {f.name: (f.histogram.edges[0], f.histogram.edges[-1]) for f in features}
        self._pending: list[tuple[npt.NDArray[np.generic], Prediction]] = []

    def offer(self, raw: npt.NDArray[np.generic], prediction: Prediction) -> None:
        """Consider one input the model answered."""
        if prediction.confidence < self._min_confidence:
            self._reservoir.add(raw, prediction, self._label, "low-confidence", self._model)
        elif self._ranges:
            self._pending.append((raw, prediction))
            if len(self._pending) >= _RANGE_BATCH:
                self.check_pending()

    def check_pending(self) -> None:
        """Compute the features of the inputs waiting, and offer those outside the reference range."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        values = self._features(np.stack([raw for raw, _ in pending]))
        outside = np.zeros(len(pending), dtype=bool)
        first: list[str | None] = [None] * len(pending)
        for name, (low, high) in self._ranges.items():
            column = values.get(name)
            if column is None:  # a feature this agent cannot compute (from a newer trainer)
                continue
            hits = (column < low) | (column > high)
            for index in np.flatnonzero(hits & ~outside):
                first[int(index)] = name
            outside |= hits
        for index in np.flatnonzero(outside):
            raw, prediction = pending[int(index)]
            self._reservoir.add(raw, prediction, self._label, f"out-of-range:{first[int(index)]}", self._model)

    def _features(self, batch: npt.NDArray[np.generic]) -> dict[str, npt.NDArray[np.float64]]:
        if self._kind == "sensor":
            return sensor_features(batch.astype(np.float32, copy=False), self._channels)
        return image_features(batch.astype(np.uint8, copy=False))


def true_label(fault: str | None, label_names: Sequence[str]) -> int:
    """The class index a simulated source's fault stands for, or NO_LABEL (real sources, unknown faults)."""
    if fault is None or fault not in label_names:
        return NO_LABEL
    return list(label_names).index(fault)

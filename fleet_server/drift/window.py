"""The telemetry of a time window, merged per device and model: stored buckets plus the raw rows not bucketed yet.

The periodic check fills ``drift_buckets`` (``fleet_server.drift.buckets``) up to a mark; a window of two buckets
or more sums the buckets from the boundary at or before its start up to the mark, and decodes only the raw rows
after it. A shorter window (a rollout wave's bake time, a dashboard's minute) reads its raw rows exactly. A
device whose own baseline ended inside the window has the part before that end counted apart (``live``), so its
device-scope judgement never compares the baseline with itself.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from fleet_server.db.drift_models import DriftBaselineRow, DriftBucketRow, DriftFillRow
from fleet_server.db.models import Telemetry
from fleet_server.drift.reference import ModelKey, Reference, load_references

__all__ = [
    "Baseline",
    "DeviceSketch",
    "FillMark",
    "MergedWindow",
    "Tally",
    "aware",
    "fill_mark",
    "floor_to",
    "merge_window",
    "raw_tallies",
]


K = TypeVar("K", bound=Hashable)


def aware(at: datetime) -> datetime:
    """SQLite hands back naive datetimes; every time the server stores is UTC."""
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def floor_to(at: datetime, bucket_s: float) -> datetime:
    """The start of the bucket holding ``at`` (buckets are aligned to the Unix epoch)."""
    stamp = aware(at).timestamp()
    return datetime.fromtimestamp(stamp - stamp % bucket_s, UTC)


@dataclass(slots=True)
class Tally:
    """Intervals merged: counts in a reference's flat layout (None without one) and the confidences' sum."""

    intervals: int = 0
    counts: npt.NDArray[np.int64] | None = None
    confidence_sum: float = 0.0
    summed: int = 0  # predictions whose telemetry carried a confidence sum
    last_at: datetime | None = None
    # per flat bin, Σ over the intervals of count² / the interval's total (Reference.squares); None: not known for
    # every interval (buckets stored before it was kept), so the intervals' dispersion cannot be told
    squares: npt.NDArray[np.float64] | None = None

    def add(self, other: Tally) -> None:
        self.intervals += other.intervals
        if other.counts is not None:
            if self.counts is None:
                self.squares = None if other.squares is None else other.squares.copy()
            elif self.squares is not None and other.squares is not None:
                self.squares = self.squares + other.squares
            else:
                self.squares = None
            self.counts = other.counts.copy() if self.counts is None else self.counts + other.counts
        self.confidence_sum += other.confidence_sum
        self.summed += other.summed
        if other.last_at is not None and (self.last_at is None or other.last_at > self.last_at):
            self.last_at = other.last_at


@dataclass(frozen=True, slots=True)
class Baseline:
    """A device's own baseline on one model (``drift_baselines``)."""

    start: datetime
    end: datetime
    intervals: int
    counts: npt.NDArray[np.int64] | None
    squares: npt.NDArray[np.float64] | None = None  # as Tally.squares


@dataclass(frozen=True, slots=True)
class DeviceSketch:
    """One device's intervals on one model in the window: all of them, and those after its baseline (``live``)."""

    device_id: str
    model: ModelKey | None
    all: Tally
    live: Tally


@dataclass(frozen=True, slots=True)
class MergedWindow:
    since: datetime  # where the window really starts: a bucket boundary when buckets were summed
    until: datetime
    sketches: list[DeviceSketch]  # one per (device, model) heard from in the window
    current: dict[str, ModelKey | None]  # each device's model in its latest interval of the window
    references: dict[ModelKey, Reference | None]
    baselines: dict[tuple[str, ModelKey], Baseline] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FillMark:
    until: datetime  # buckets are filled for every start before this
    bucket_s: float


def fill_mark(session: Session) -> FillMark | None:
    """How far the periodic check has filled the buckets; None before its first fill."""
    row = session.get(DriftFillRow, "buckets")
    if row is None or row.until is None or row.bucket_s is None:
        return None
    return FillMark(aware(row.until), row.bucket_s)


def _model_key(payload: dict[str, Any], version: str | None) -> ModelKey | None:
    model = payload.get("model")
    if not isinstance(model, dict) or version is None:
        return None
    return (str(model.get("name")), version)


def raw_tallies(
    session: Session,
    since: datetime,
    until: datetime,
    key_of: Callable[[str, ModelKey | None, datetime], K | None],
    *,
    filters: Collection[ColumnElement[bool]] = (),
    include_until: bool = True,
) -> tuple[dict[K, tuple[str, ModelKey | None, Tally]], dict[ModelKey, Reference | None]]:
    """Raw telemetry rows from ``since`` to ``until`` decoded and summed per ``key_of(device, model, received_at)``.

    Decoding the JSON is the dear part of a drift check (about 0.1 ms a row): only rows not in buckets come here.
    """
    end = Telemetry.received_at <= until if include_until else Telemetry.received_at < until
    query = select(Telemetry.device_id, Telemetry.model_version, Telemetry.received_at, Telemetry.payload).where(
        Telemetry.received_at >= since, end, *filters
    )
    rows: dict[K, tuple[str, ModelKey | None, list[dict[str, Any]], datetime]] = {}
    for device_id, version, received_at, payload in session.execute(query):
        model = _model_key(payload, version)
        at = aware(received_at)
        key = key_of(device_id, model, at)
        if key is None:
            continue
        entry = rows.get(key)
        if entry is None:
            rows[key] = (device_id, model, [payload], at)
        else:
            entry[2].append(payload)
            if at > entry[3]:
                rows[key] = (device_id, model, entry[2], at)
    references = load_references(session, {model for _, model, _, _ in rows.values() if model is not None})
    out: dict[K, tuple[str, ModelKey | None, Tally]] = {}
    for key, (device_id, model, payloads, last_at) in rows.items():
        reference = references.get(model) if model is not None else None
        counts = squares = None
        if reference is not None:
            flat = np.asarray([reference.flatten(p) for p in payloads], dtype=np.int64)
            counts, squares = flat.sum(axis=0), reference.squares(flat)
        sums = [
            (p["confidence_sum"], sum(p.get("confidence_counts") or ()))
            for p in payloads
            if p.get("confidence_sum") is not None
        ]
        tally = Tally(
            intervals=len(payloads),
            counts=counts,
            confidence_sum=float(sum(s for s, _ in sums)),
            summed=int(sum(n for _, n in sums)),
            last_at=last_at,
            squares=squares,
        )
        out[key] = (device_id, model, tally)
    return out, references


def _cuts(
    session: Session, since: datetime, filters: Collection[ColumnElement[bool]]
) -> dict[tuple[str, ModelKey], Baseline]:
    """Baselines that ended after ``since``: their devices' window has a part before the end to count apart."""
    query = select(
        DriftBaselineRow.device_id,
        DriftBaselineRow.model_name,
        DriftBaselineRow.model_version,
        DriftBaselineRow.start,
        DriftBaselineRow.end,
        DriftBaselineRow.intervals,
    ).where(DriftBaselineRow.end > since, *filters)
    return {
        (device_id, (name, version)): Baseline(aware(start), aware(end), intervals, None)
        for device_id, name, version, start, end, intervals in session.execute(query)
    }


def _telemetry_filters(device_ids: Collection[str] | None, model_version: str | None) -> list[ColumnElement[bool]]:
    filters: list[ColumnElement[bool]] = []
    if device_ids is not None:
        filters.append(Telemetry.device_id.in_(sorted(device_ids)))
    if model_version is not None:
        filters.append(Telemetry.model_version == model_version)
    return filters


def _bucket_filters(
    model: type[DriftBucketRow] | type[DriftBaselineRow], device_ids: Collection[str] | None, model_version: str | None
) -> list[ColumnElement[bool]]:
    filters: list[ColumnElement[bool]] = []
    if device_ids is not None:
        filters.append(model.device_id.in_(sorted(device_ids)))
    if model_version is not None:
        filters.append(model.model_version == model_version)
    return filters


class _Merger:
    """Adds tallies per (device, model), splitting off the part of a window before a device's baseline end."""

    def __init__(self, cuts: dict[tuple[str, ModelKey], Baseline]) -> None:
        self._cuts = cuts
        self.all: dict[tuple[str, ModelKey | None], Tally] = defaultdict(Tally)
        self.live: dict[tuple[str, ModelKey | None], Tally] = defaultdict(Tally)

    def is_live(self, device_id: str, model: ModelKey | None, at: datetime) -> bool:
        """Whether a tally that starts at ``at`` lies after the device's baseline (or the device has none here)."""
        cut = self._cuts.get((device_id, model)) if model is not None else None
        return cut is None or at >= cut.end

    def add(self, device_id: str, model: ModelKey | None, live: bool, tally: Tally) -> None:
        key = (device_id, model)
        self.all[key].add(tally)
        if live:
            self.live[key].add(tally)

    def sketches(self) -> list[DeviceSketch]:
        return [
            DeviceSketch(device_id, model, tally, self.live.get((device_id, model)) or Tally())
            for (device_id, model), tally in self.all.items()
        ]


def _add_buckets(
    session: Session, merger: _Merger, start: datetime, end: datetime, filters: Collection[ColumnElement[bool]]
) -> dict[ModelKey, Reference | None]:
    """The stored buckets from ``start`` to ``end`` added into ``merger``; the references they are laid out in.

    Plain rows rather than ORM objects, and one numpy sum per device over its blobs joined: building an object per
    bucket row would cost more than all the statistics.
    """
    query = select(
        DriftBucketRow.device_id,
        DriftBucketRow.model_name,
        DriftBucketRow.model_version,
        DriftBucketRow.start,
        DriftBucketRow.last_at,
        DriftBucketRow.intervals,
        DriftBucketRow.counts,
        DriftBucketRow.confidence_sum,
        DriftBucketRow.confidence_summed,
        DriftBucketRow.squares,
    ).where(DriftBucketRow.start >= start, DriftBucketRow.start < end, *filters)
    groups: dict[tuple[str, ModelKey, bool], tuple[Tally, list[bytes], list[bytes | None]]] = {}
    for row in session.execute(query):
        device_id, name, version, bucket_start, last_at, intervals, blob, confidence_sum, summed, squares = row
        model = (name, version)
        key = (device_id, model, merger.is_live(device_id, model, aware(bucket_start)))
        entry = groups.get(key)
        if entry is None:
            entry = groups[key] = (Tally(), [], [])
        tally, blobs, square_blobs = entry
        tally.add(Tally(intervals, None, confidence_sum, summed, aware(last_at)))
        blobs.append(blob)
        square_blobs.append(squares)
    references = load_references(session, {model for _, model, _ in groups})
    for (device_id, model, live), (tally, blobs, square_blobs) in groups.items():
        reference = references.get(model)
        if reference is not None and all(len(b) == 4 * reference.width for b in blobs):
            joined = np.frombuffer(b"".join(blobs), dtype="<i4").reshape(len(blobs), reference.width)
            tally.counts = joined.sum(axis=0, dtype=np.int64)
            tally.squares = reference.sum_squares(square_blobs)
        merger.add(device_id, model, live, tally)
    return references


def merge_window(
    session: Session,
    since: datetime,
    until: datetime,
    *,
    device_ids: Collection[str] | None = None,
    model_version: str | None = None,
) -> MergedWindow:
    """The window's telemetry (of ``device_ids`` and ``model_version`` when given) merged per device and model."""
    mark = fill_mark(session)
    use_buckets = mark is not None and (until - since).total_seconds() >= 2 * mark.bucket_s and since < mark.until
    start = floor_to(since, mark.bucket_s) if use_buckets and mark is not None else since
    merger = _Merger(_cuts(session, start, _bucket_filters(DriftBaselineRow, device_ids, model_version)))
    references: dict[ModelKey, Reference | None] = {}
    raw_since = start
    if use_buckets and mark is not None:
        raw_since = mark.until
        references = _add_buckets(
            session, merger, start, mark.until, _bucket_filters(DriftBucketRow, device_ids, model_version)
        )
    raw, raw_references = raw_tallies(
        session,
        raw_since,
        until,
        lambda device_id, model, at: (device_id, model, merger.is_live(device_id, model, at)),
        filters=_telemetry_filters(device_ids, model_version),
    )
    references |= raw_references
    for (_, _, is_live), (device_id, model, tally) in raw.items():
        merger.add(device_id, model, is_live, tally)
    sketches = merger.sketches()
    current: dict[str, tuple[datetime, ModelKey | None]] = {}
    for sketch in sketches:
        last = sketch.all.last_at or start
        seen = current.get(sketch.device_id)
        if seen is None or last > seen[0]:
            current[sketch.device_id] = (last, sketch.model)
    keys = {(sketch.device_id, sketch.model) for sketch in sketches if sketch.model is not None}
    baselines = _baselines(session, keys, references)
    return MergedWindow(start, until, sketches, {d: model for d, (_, model) in current.items()}, references, baselines)


def _baselines(
    session: Session, keys: set[tuple[str, ModelKey]], references: dict[ModelKey, Reference | None]
) -> dict[tuple[str, ModelKey], Baseline]:
    if not keys:
        return {}
    versions = sorted({model[1] for _, model in keys})
    found: dict[tuple[str, ModelKey], Baseline] = {}
    query = select(
        DriftBaselineRow.device_id,
        DriftBaselineRow.model_name,
        DriftBaselineRow.model_version,
        DriftBaselineRow.start,
        DriftBaselineRow.end,
        DriftBaselineRow.intervals,
        DriftBaselineRow.counts,
        DriftBaselineRow.squares,
    ).where(DriftBaselineRow.model_version.in_(versions))
    for device_id, name, version, start, end, intervals, blob, squares in session.execute(query):
        model = (name, version)
        reference = references.get(model)
        if (device_id, model) in keys and reference is not None:
            counts = reference.decode(blob)
            if counts is not None:
                found[(device_id, model)] = Baseline(
                    aware(start), aware(end), intervals, counts, reference.sum_squares([squares])
                )
    return found

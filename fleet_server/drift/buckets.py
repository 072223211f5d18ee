"""Filling the bucket table from raw telemetry, closing devices' own baselines from it, and pruning it.

The periodic check calls ``fill`` first: it decodes the telemetry received since the last fill (whole buckets
only, up to a couple of seconds ago so that a row still being committed is not missed) and writes one row per
device, model and bucket. Filling is idempotent: the buckets of the span are deleted and written again, so a
check that failed halfway is simply redone. The fill row is locked for the transaction, so two servers on one
PostgreSQL database do not fill the same span at once.

A device's baseline on a model is its first buckets on that model, from its first bucket until ``baseline_s``
have passed and they hold ``min_samples``; it is stored once closed and never changes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

import numpy as np
from sqlalchemy import and_, delete, exists, func, insert, select
from sqlalchemy.orm import Session

from fleet_server.db.drift_models import DriftBaselineRow, DriftBucketRow, DriftFillRow
from fleet_server.db.models import Telemetry
from fleet_server.drift.reference import ModelKey, load_references
from fleet_server.drift.settings import DriftSettings
from fleet_server.drift.window import FillMark, aware, floor_to, raw_tallies

__all__ = ["close_baselines", "fill", "prune_buckets"]

log = logging.getLogger(__name__)

# ingest commits a batch within a linger of 50 ms: rows younger than this may still be on their way to the table
_SETTLE_S: Final = 2.0
# a fill decodes at most this many buckets at once, so a first fill over a long history stays within memory
_CHUNK_BUCKETS: Final = 12


def _fill_row(session: Session) -> DriftFillRow:
    row = session.get(DriftFillRow, "buckets", with_for_update=True)
    if row is None:  # the migration makes it; a database made otherwise gets it here
        row = DriftFillRow(name="buckets", until=None, bucket_s=None)
        session.add(row)
        session.flush()
    return row


def fill(session: Session, *, now: datetime, settings: DriftSettings) -> FillMark:
    """Bucket every whole bucket of telemetry received since the last fill; the new mark."""
    bucket_s = settings.bucket_s
    row = _fill_row(session)
    if row.bucket_s != bucket_s:
        # another bucket size: the stored buckets do not line up with the new one, so they are made again
        session.execute(delete(DriftBucketRow))
        row.until = None
    end = floor_to(now - timedelta(seconds=min(_SETTLE_S, bucket_s)), bucket_s)
    begin = aware(row.until) if row.until is not None else _first_start(session, end, settings)
    step = timedelta(seconds=bucket_s * _CHUNK_BUCKETS)
    chunk = begin
    while chunk < end:
        _fill_span(session, chunk, min(chunk + step, end), bucket_s)
        chunk += step
    row.until = max(end, begin)
    row.bucket_s = bucket_s
    return FillMark(aware(row.until), bucket_s)


def _first_start(session: Session, end: datetime, settings: DriftSettings) -> datetime:
    """Where a first fill begins: the oldest telemetry, but no further back than two windows and a baseline."""
    oldest = session.scalar(select(func.min(Telemetry.received_at)))
    earliest = end - timedelta(seconds=2 * settings.window_s + settings.baseline_s)
    if oldest is None:
        return end
    return max(floor_to(aware(oldest), settings.bucket_s), floor_to(earliest, settings.bucket_s))


def _fill_span(session: Session, begin: datetime, end: datetime, bucket_s: float) -> None:
    session.execute(delete(DriftBucketRow).where(DriftBucketRow.start >= begin, DriftBucketRow.start < end))
    tallies, references = raw_tallies(
        session,
        begin,
        end,
        lambda device_id, model, at: None if model is None else (device_id, *model, floor_to(at, bucket_s)),
        include_until=False,
    )
    rows = []
    for (device_id, name, version, start), (_, _, tally) in tallies.items():
        model = (name, version)
        reference = references.get(model)
        rows.append(
            {
                "device_id": device_id,
                "model_name": model[0],
                "model_version": model[1],
                "start": start,
                "last_at": tally.last_at or start,
                "intervals": tally.intervals,
                "counts": reference.encode(tally.counts) if reference is not None and tally.counts is not None else b"",
                "confidence_sum": tally.confidence_sum,
                "confidence_summed": tally.summed,
                "squares": reference.encode_squares(tally.squares) if reference is not None else None,
            }
        )
    if rows:
        session.execute(insert(DriftBucketRow), rows)


@dataclass(slots=True)
class _Open:
    start: datetime
    intervals: int = 0
    counts: np.ndarray | None = None
    squares: list[bytes | None] = field(default_factory=list)


def close_baselines(session: Session, *, mark: FillMark, settings: DriftSettings) -> int:
    """Store the baseline of every device and model whose first buckets now span ``baseline_s`` and hold
    ``min_samples``; how many were closed."""
    same_key = and_(
        DriftBaselineRow.device_id == DriftBucketRow.device_id,
        DriftBaselineRow.model_name == DriftBucketRow.model_name,
        DriftBaselineRow.model_version == DriftBucketRow.model_version,
    )
    query = (
        select(DriftBucketRow)
        .where(~exists().where(same_key))
        .order_by(
            DriftBucketRow.device_id, DriftBucketRow.model_name, DriftBucketRow.model_version, DriftBucketRow.start
        )
    )
    rows = list(session.scalars(query))
    references = load_references(session, {(r.model_name, r.model_version) for r in rows})
    opened: dict[tuple[str, ModelKey], _Open] = {}
    closed: dict[tuple[str, ModelKey], dict[str, object]] = {}
    span = timedelta(seconds=settings.baseline_s)
    step = timedelta(seconds=mark.bucket_s)
    for row in rows:
        model = (row.model_name, row.model_version)
        key = (row.device_id, model)
        reference = references.get(model)
        counts = reference.decode(row.counts) if reference is not None else None
        if key in closed or counts is None or reference is None:
            continue
        state = opened.setdefault(key, _Open(aware(row.start)))
        state.intervals += row.intervals
        state.counts = counts if state.counts is None else state.counts + counts
        state.squares.append(row.squares)
        end = aware(row.start) + step
        samples = int(state.counts[: reference.sample_bins].sum())
        if end - state.start >= span and samples >= settings.thresholds.min_samples:
            closed[key] = {
                "device_id": row.device_id,
                "model_name": model[0],
                "model_version": model[1],
                "start": state.start,
                "end": end,
                "intervals": state.intervals,
                "counts": reference.encode(state.counts),
                "squares": reference.encode_squares(reference.sum_squares(state.squares)),
            }
    if closed:
        session.execute(insert(DriftBaselineRow), list(closed.values()))
        log.info("drift.baselines_closed", extra={"count": len(closed)})
    return len(closed)


def prune_buckets(session: Session, *, mark: FillMark, settings: DriftSettings) -> None:
    """Delete buckets no window reaches any more, except those of baselines still open."""
    cutoff = mark.until - timedelta(seconds=settings.window_s + 2 * mark.bucket_s)
    has_baseline = exists().where(
        DriftBaselineRow.device_id == DriftBucketRow.device_id,
        DriftBaselineRow.model_name == DriftBucketRow.model_name,
        DriftBaselineRow.model_version == DriftBucketRow.model_version,
    )
    session.execute(
        delete(DriftBucketRow)
        .where(DriftBucketRow.start < cutoff, has_baseline)
        .execution_options(synchronize_session=False)
    )

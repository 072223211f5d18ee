"""The drift tables: the history of periodic checks, the telemetry's sketches merged per device and time bucket,
each device's own baseline, and how far the buckets are filled."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Float, Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from fleet_server.db.models import Base, Telemetry

__all__ = ["DriftBaselineRow", "DriftBucketRow", "DriftCheckRow", "DriftFillRow"]


class DriftCheckRow(Base):
    """A device's (``scope`` device) or a cohort's (``scope`` cohort) drift level at one check, and its worst feature."""

    __tablename__ = "drift_history"
    __table_args__ = (Index("ix_drift_history_scope_at", "scope", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    scope: Mapped[str] = mapped_column(String(8))
    device_id: Mapped[str | None] = mapped_column(String(64), index=True)
    model_name: Mapped[str | None] = mapped_column(String(64))
    model_version: Mapped[str | None] = mapped_column(String(64))
    profile: Mapped[str | None] = mapped_column(String(64))
    tag: Mapped[str | None] = mapped_column(String(128))
    level: Mapped[str] = mapped_column(String(16))
    worst_feature: Mapped[str | None] = mapped_column(String(64))
    worst_psi: Mapped[float | None] = mapped_column(Float)
    estimated_accuracy: Mapped[float | None] = mapped_column(Float)
    sample_count: Mapped[int] = mapped_column(Integer)
    window_s: Mapped[float] = mapped_column(Float)


class DriftBucketRow(Base):
    """One device's telemetry on one model in one time bucket, its counts summed in the model's reference layout.

    ``counts`` are little-endian int32 in the layout of ``fleet_server.drift.reference.Reference`` (features'
    bins, classes, confidence bins), empty when the model has no reference profile.
    """

    __tablename__ = "drift_buckets"
    __table_args__ = (
        UniqueConstraint("device_id", "model_name", "model_version", "start", name="uq_drift_buckets_key"),
        Index("ix_drift_buckets_start", "start"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(String(64))
    model_name: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str] = mapped_column(String(64))
    start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    intervals: Mapped[int] = mapped_column(Integer)
    counts: Mapped[bytes] = mapped_column(LargeBinary)
    confidence_sum: Mapped[float] = mapped_column(Float)
    confidence_summed: Mapped[int] = mapped_column(Integer)
    squares: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # drift.window.Tally.squares


class DriftBaselineRow(Base):
    """A device's own baseline on one model: its first buckets on it, summed, once they held enough samples."""

    __tablename__ = "drift_baselines"

    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    model_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    model_version: Mapped[str] = mapped_column(String(64), primary_key=True)
    start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    end: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    intervals: Mapped[int] = mapped_column(Integer)
    counts: Mapped[bytes] = mapped_column(LargeBinary)
    squares: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # drift.window.Tally.squares


class DriftFillRow(Base):
    """How far the buckets are filled (``until``, exclusive) and with which bucket size: one row, "buckets"."""

    __tablename__ = "drift_fill"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    bucket_s: Mapped[float | None] = mapped_column(Float)


# the drift window reads telemetry by the time it arrived: without this index every check scans the whole table
Index("ix_telemetry_received_at", Telemetry.received_at)

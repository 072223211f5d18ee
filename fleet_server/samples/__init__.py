"""Samples devices send for retraining (drifted and low-confidence inputs), kept as files, never in the database."""

from __future__ import annotations

from fleet_server.samples.store import SampleRecord, SampleStore, SampleStoreError, StoreFull

__all__ = ["SampleRecord", "SampleStore", "SampleStoreError", "StoreFull"]

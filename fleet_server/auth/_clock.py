"""Datetimes read back from the database, made comparable with the aware ones the server writes."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["as_utc"]


def as_utc(moment: datetime) -> datetime:
    """``moment`` as an aware UTC datetime (SQLite hands back naive ones; every time the server stores is UTC)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

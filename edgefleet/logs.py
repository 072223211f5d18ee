"""Logging set-up for entry points: stable event names as messages, facts as fields."""

from __future__ import annotations

import logging
import sys

__all__ = ["configure"]

_STANDARD = set(vars(logging.makeLogRecord({})))


class _FieldsFormatter(logging.Formatter):
    """Appends the record's ``extra`` fields as key=value, so logs can be searched and counted."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = {k: v for k, v in vars(record).items() if k not in _STANDARD and k not in {"message", "asctime"}}
        return line + "".join(f" {k}={v}" for k, v in fields.items())


def configure(level: str = "INFO") -> None:
    """Send logs to stderr at ``level``; called once by each entry point, never by library code."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_FieldsFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())

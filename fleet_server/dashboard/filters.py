"""The Jinja filters and globals the templates share: times as ISO (the browser shows them in its own zone),
sizes, shares, and the colour of each state."""

from __future__ import annotations

from datetime import UTC, datetime

from jinja2 import Environment

from fleet_server.dashboard import levels

__all__ = ["install_filters", "iso", "number", "percent", "size"]


def iso(moment: datetime | None) -> str:
    """ISO 8601 in UTC; the page's script shows it in the viewer's own time zone."""
    if moment is None:
        return ""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def size(count: int) -> str:
    """Bytes as people read them: 812 B, 14.2 KiB, 3.1 MiB."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def percent(share: float | None, digits: int = 1) -> str:
    return "–" if share is None else f"{share:.{digits}%}"


def number(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "–"
    return f"{value:,.0f}" if isinstance(value, int) or float(value).is_integer() else f"{value:,.{digits}f}"


def install_filters(env: Environment) -> None:
    """Register the filters and the state colours on ``env``."""
    env.filters.update(iso=iso, size=size, percent=percent, number=number)
    env.globals.update(
        device_level=levels.of_device,
        rollout_level=levels.of_rollout,
        update_level=levels.of_update,
        drift_level=levels.of_drift,
    )

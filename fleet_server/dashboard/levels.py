"""One vocabulary of colours for every state the pages show: healthy, warning, alarm, or idle (nothing to judge)."""

from __future__ import annotations

from typing import Final, Protocol

__all__ = ["LEVELS", "Gate", "gate_figures", "of_device", "of_drift", "of_event", "of_gate", "of_rollout", "of_update"]

# the CSS classes the templates use (state-healthy, ...); the legend in the page footer explains them
LEVELS: Final = ("healthy", "warning", "alarm", "idle")

_DEVICE: Final = {"online": "healthy", "offline": "warning"}
_ROLLOUT: Final = {"running": "healthy", "paused": "warning", "aborted": "alarm", "completed": "idle"}
_UPDATE: Final = {"committed": "healthy", "failed": "alarm", "rolled-back": "alarm"}
_EVENT: Final = {"committed": "healthy", "failed": "alarm", "rolled-back": "alarm", "error": "alarm"}
_DRIFT: Final = {"ok": "healthy", "warn": "warning", "warning": "warning", "alarm": "alarm"}
# gates whose value must stay at or under the threshold; the others must reach it
_AT_MOST: Final = frozenset({"error-rate", "latency"})


class Gate(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def value(self) -> float | None: ...
    @property
    def threshold(self) -> float: ...


def of_device(state: str) -> str:
    return _DEVICE.get(state, "idle")


def of_rollout(state: str) -> str:
    return _ROLLOUT.get(state, "idle")


def of_update(state: str) -> str:
    """A device's update in a rollout: still on its way is a warning until it ends."""
    return _UPDATE.get(state, "warning")


def of_event(kind: str) -> str:
    return _EVENT.get(kind, "idle")


def of_drift(level: str) -> str:
    return _DRIFT.get(level, "idle")


def of_gate(passed: bool, value: float | None) -> str:
    if value is None:
        return "idle"
    return "healthy" if passed else "alarm"


def gate_figures(gate: Gate) -> tuple[str, str, str]:
    """The gate's value and threshold as people read them (percent or ×), and which way the threshold points."""
    ratio = gate.name == "latency"

    def shown(x: float | None) -> str:
        if x is None:
            return "–"
        return f"{x:.2f}×" if ratio else f"{x:.1%}"

    return shown(gate.value), shown(gate.threshold), "≤" if gate.name in _AT_MOST else "≥"

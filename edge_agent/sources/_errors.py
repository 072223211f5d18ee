"""What an input source reports when its device fails (under AgentError of edgefleet.errors)."""

from __future__ import annotations

from edgefleet.errors import AgentError

__all__ = ["SourceError", "SourceLost"]


class SourceError(AgentError):
    """An input source cannot deliver what the model needs."""


class SourceLost(SourceError):
    """The device behind a source stopped answering (unplugged, stream down); the source retries opening it."""

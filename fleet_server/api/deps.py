"""Typed dependencies: a route's signature states what it needs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from fleet_server.runtime import Runtime

__all__ = ["RuntimeDep", "SessionDep", "get_db", "get_runtime"]


def get_runtime(request: Request) -> Runtime:
    """The running server's state."""
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_db(runtime: RuntimeDep) -> Iterator[Session]:
    """A database session for one request."""
    with runtime.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_db)]

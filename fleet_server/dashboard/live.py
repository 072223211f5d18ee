"""Live updates: a Server-Sent Events stream that says "the fleet changed" whenever the database moved on.

The stream polls a cheap fingerprint of the tables the pages show (newest telemetry, event and audit rows,
device and rollout updates) and sends it when it differs from the last one sent; the page then fetches its
changed parts. A stream ends after a while and the browser's EventSource reconnects by itself, so a stopping
server is never held open by a page left on screen.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Final

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import Request

from fleet_server.db.models import Device, Event, Package, Telemetry
from fleet_server.db.rollout_models import AuditRow, Rollout

__all__ = ["fingerprint", "stream"]

POLL_S: Final = 1.0
_STREAM_S: Final = 30.0  # then the browser reconnects (after the retry below)
_RETRY_MS: Final = 1000
_SILENCE_BUCKET_S: Final = 15  # devices turn offline by silence: look again every so often even when nothing moved


def fingerprint(sessions: sessionmaker[Session]) -> str:
    """A short string that changes whenever something a page shows has changed."""
    with sessions() as session:
        row = session.execute(
            select(
                select(func.max(Telemetry.id)).scalar_subquery(),
                select(func.max(Event.id)).scalar_subquery(),
                select(func.max(AuditRow.id)).scalar_subquery(),
                select(func.max(Device.last_seen)).scalar_subquery(),
                select(func.count(Device.id)).scalar_subquery(),
                select(func.max(Rollout.updated_at)).scalar_subquery(),
                select(func.count(Package.id)).scalar_subquery(),
            )
        ).one()
    return json.dumps([str(x) for x in row] + [int(time.time() // _SILENCE_BUCKET_S)])


async def stream(request: Request, sessions: sessionmaker[Session]) -> AsyncIterator[str]:
    """SSE lines: an ``fleet`` event with the fingerprint at start and at each change, comments to keep alive."""
    yield f"retry: {_RETRY_MS}\n\n"
    sent = ""
    deadline = time.monotonic() + _STREAM_S
    while time.monotonic() < deadline and not await request.is_disconnected():
        mark = await asyncio.to_thread(fingerprint, sessions)
        if mark != sent:
            sent = mark
            yield f"event: fleet\ndata: {mark}\n\n"
        else:
            yield ": still here\n\n"
        await asyncio.sleep(POLL_S)

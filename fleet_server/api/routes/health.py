"""``/healthz`` for orchestrators and ``/metrics`` for Prometheus."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from fleet_server.api.deps import RuntimeDep, SessionDep

__all__ = ["Health", "healthz", "metrics", "router"]

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: str
    database: bool
    mqtt: bool


@router.get("/healthz")
def healthz(session: SessionDep, runtime: RuntimeDep, response: Response) -> Health:
    """200 when the database answers and ingest is connected to the broker, else 503."""
    try:
        session.execute(text("SELECT 1"))
        database = True
    except SQLAlchemyError:
        database = False
    mqtt = runtime.ingest.is_connected
    healthy = database and mqtt
    response.status_code = 200 if healthy else 503
    return Health(status="ok" if healthy else "degraded", database=database, mqtt=mqtt)


@router.get("/metrics", response_class=Response)
def metrics(runtime: RuntimeDep) -> Response:
    """Prometheus text exposition of the server's counters."""
    return Response(generate_latest(runtime.registry), media_type=CONTENT_TYPE_LATEST)

"""The FastAPI application factory: database, embedded broker, ingest and package store live as long as the app."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry
from sqlalchemy.exc import DataError

import edgefleet
from edgefleet.signing import load_public_keys
from fleet_server.api.routes import auth, cohorts, devices, health, models, rollouts
from fleet_server.auth import ensure_admin_token
from fleet_server.broker import EmbeddedBroker
from fleet_server.db import make_engine, make_session_factory, upgrade
from fleet_server.fleet_metrics import FleetCollector
from fleet_server.ingest import Ingest, IngestMetrics
from fleet_server.registry import PackageRegistry, PackageStore
from fleet_server.rollouts import CommandPublisher, RolloutEngine
from fleet_server.runtime import Runtime
from fleet_server.settings import ServerSettings

__all__ = ["create_app"]

log = logging.getLogger(__name__)


def create_app(settings: ServerSettings) -> FastAPI:
    """A server for ``settings``; nothing starts until the app's lifespan does."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        # an unreadable key file stops start-up here (InputError), not at the first upload
        packages = PackageRegistry(
            await asyncio.to_thread(PackageStore.open, settings.packages_dir()), load_public_keys(settings.trusted_keys)
        )
        if not settings.trusted_keys:
            log.warning("registry.no_trusted_keys", extra={"setting": "EDGEFLEET_SERVER_TRUSTED_KEYS"})
        engine = make_engine(settings.resolved_database_url())
        await asyncio.to_thread(upgrade, engine)
        await asyncio.to_thread(
            ensure_admin_token, make_session_factory(engine), settings.resolved_admin_token_file(), datetime.now(UTC)
        )
        broker = EmbeddedBroker(settings.mqtt.host, settings.mqtt.port) if settings.mqtt.embedded_broker else None
        if broker is not None:
            await broker.start()
        registry = CollectorRegistry()
        ingest = Ingest(
            make_session_factory(engine),
            IngestMetrics(registry),
            host=settings.mqtt.host,
            port=settings.mqtt.port,
            max_payload_bytes=settings.max_payload_bytes,
            queue_size=settings.ingest_queue_size,
            share_group=settings.mqtt.share_group,
        )
        await asyncio.to_thread(ingest.start)
        commands = CommandPublisher(settings.mqtt)
        await asyncio.to_thread(commands.start)
        sessions = make_session_factory(engine)
        registry.register(FleetCollector(sessions, settings.offline_after_s))
        rollout_engine = RolloutEngine(sessions, commands, settings.resolved_public_url(), settings.rollout_tick_s)
        rollout_engine.start()
        app.state.runtime = Runtime(settings, sessions, ingest, registry, packages, commands)
        try:
            yield
        finally:
            await asyncio.to_thread(rollout_engine.stop)
            await asyncio.to_thread(commands.stop)
            await asyncio.to_thread(ingest.stop)
            if broker is not None:
                await broker.stop()
            engine.dispose()

    app = FastAPI(title="edgefleet fleet server", version=edgefleet.__version__, lifespan=lifespan)
    app.add_exception_handler(DataError, _unstorable_value)
    app.include_router(devices.router, prefix="/api/v1")
    app.include_router(models.router, prefix="/api/v1")
    app.include_router(auth.router, prefix="/api/v1")
    app.include_router(rollouts.router, prefix="/api/v1")
    app.include_router(cohorts.router, prefix="/api/v1")
    app.include_router(health.router)
    return app


async def _unstorable_value(_request: Request, err: Exception) -> JSONResponse:
    # the database refuses a value no validation rule names, such as a NUL character on PostgreSQL: that is the
    # client's input, not a server error, whatever route it came through
    log.info("api.unstorable_value", extra={"error": str(err).splitlines()[0][:200]})
    return JSONResponse(
        status_code=422,
        content={
            "detail": "a value in the request cannot be stored or looked up (remove control characters "
            "such as NUL from it)"
        },
    )

"""The FastAPI application factory: database, embedded broker, ingest and package store live as long as the app."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

import edgefleet
from edgefleet.signing import load_public_keys
from fleet_server.api.routes import devices, health, models
from fleet_server.broker import EmbeddedBroker
from fleet_server.db import make_engine, make_session_factory, upgrade
from fleet_server.ingest import Ingest, IngestMetrics
from fleet_server.registry import PackageRegistry, PackageStore
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
        )
        await asyncio.to_thread(ingest.start)
        app.state.runtime = Runtime(settings, make_session_factory(engine), ingest, registry, packages)
        try:
            yield
        finally:
            await asyncio.to_thread(ingest.stop)
            if broker is not None:
                await broker.stop()
            engine.dispose()

    app = FastAPI(title="edgefleet fleet server", version=edgefleet.__version__, lifespan=lifespan)
    app.include_router(devices.router, prefix="/api/v1")
    app.include_router(models.router, prefix="/api/v1")
    app.include_router(health.router)
    return app

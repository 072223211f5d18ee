"""The FastAPI application factory: database, embedded broker, ingest and package store live as long as the app."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from sqlalchemy.exc import DataError
from sqlalchemy.orm import Session, sessionmaker

import edgefleet
from fleet_server.api.ratelimit import RateLimitMiddleware, RateLimits
from fleet_server.api.routes import auth, cohorts, devices, drift, health, keys, models, rollouts
from fleet_server.api.routes import samples as samples_routes
from fleet_server.auth import ensure_admin_token
from fleet_server.broker import EmbeddedBroker
from fleet_server.broker_auth import COMMANDS_USER, INGEST_USER, MosquittoAccounts
from fleet_server.dashboard import install as install_dashboard
from fleet_server.db import make_engine, make_session_factory, upgrade
from fleet_server.drift.history import DriftMonitor
from fleet_server.fleet_metrics import FleetCollector
from fleet_server.ingest import Ingest, IngestMetrics
from fleet_server.key_distribution import KeyDistributor, server_key_ring
from fleet_server.registry import PackageRegistry, PackageStore
from fleet_server.rollouts import CommandPublisher, RolloutEngine
from fleet_server.runtime import Runtime
from fleet_server.settings import MqttSettings, ServerSettings

__all__ = ["create_app"]

log = logging.getLogger(__name__)


def create_app(settings: ServerSettings) -> FastAPI:
    """A server for ``settings``; nothing starts until the app's lifespan does."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        # an unreadable key file stops start-up here (InputError), not at the first upload
        keys = await asyncio.to_thread(server_key_ring, settings)
        packages = PackageRegistry(await asyncio.to_thread(PackageStore.open, settings.packages_dir()), keys)
        if not settings.trusted_keys and not settings.root_keys:
            log.warning("registry.no_trusted_keys", extra={"setting": "EDGEFLEET_SERVER_TRUSTED_KEYS"})
        engine = make_engine(settings.resolved_database_url())
        await asyncio.to_thread(upgrade, engine)
        await asyncio.to_thread(
            ensure_admin_token, make_session_factory(engine), settings.resolved_admin_token_file(), datetime.now(UTC)
        )
        mqtt_logins = await asyncio.to_thread(_production_broker, app, settings, make_session_factory(engine))
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
            client_id=settings.mqtt.ingest_client_id or await asyncio.to_thread(_ingest_client_id, settings.data_dir),
            durable_acks=not settings.mqtt.embedded_broker,
            username=mqtt_logins.ingest.username,
            password=mqtt_logins.ingest.password.get_secret_value() if mqtt_logins.ingest.password else None,
        )
        await asyncio.to_thread(ingest.start)
        commands = CommandPublisher(mqtt_logins.commands)
        await asyncio.to_thread(commands.start)
        sessions = make_session_factory(engine)
        registry.register(FleetCollector(sessions, settings.offline_after_s))
        rollout_engine = RolloutEngine(
            sessions, commands, settings.resolved_public_url(), settings.rollout_tick_s, settings.drift.thresholds
        )
        rollout_engine.start()
        drift_monitor = DriftMonitor(sessions, settings.drift)
        drift_monitor.start()
        key_distributor = KeyDistributor(keys, sessions, commands)
        key_distributor.start()
        app.state.runtime = Runtime(settings, sessions, ingest, registry, packages, commands, key_distributor)
        try:
            yield
        finally:
            await asyncio.to_thread(key_distributor.stop)
            await asyncio.to_thread(drift_monitor.stop)
            await asyncio.to_thread(rollout_engine.stop)
            await asyncio.to_thread(commands.stop)
            await asyncio.to_thread(ingest.stop)
            if broker is not None:
                await broker.stop()
            engine.dispose()

    app = FastAPI(title="edgefleet fleet server", version=edgefleet.__version__, lifespan=lifespan)
    app.state.rate_limits = RateLimits.from_settings(settings.rate_limits)
    app.state.broker_accounts = None
    app.add_middleware(RateLimitMiddleware, limits=app.state.rate_limits)
    app.add_exception_handler(DataError, _unstorable_value)
    app.include_router(devices.router, prefix="/api/v1")
    app.include_router(models.router, prefix="/api/v1")
    app.include_router(auth.router, prefix="/api/v1")
    app.include_router(rollouts.router, prefix="/api/v1")
    app.include_router(cohorts.router, prefix="/api/v1")
    app.include_router(drift.router, prefix="/api/v1")
    app.include_router(samples_routes.router, prefix="/api/v1")
    app.include_router(keys.router, prefix="/api/v1")
    app.include_router(health.router)
    install_dashboard(app)
    return app


@dataclass(frozen=True, slots=True)
class _MqttLogins:
    """The broker settings each of the server's own MQTT clients connects with."""

    ingest: MqttSettings
    commands: MqttSettings


def _ingest_client_id(data_dir: Path) -> str:
    """The ingest's client id kept in ``data_dir``, made at the first start: the same id at every start is what
    lets the broker keep the ingest's session while the server is down."""
    path = data_dir / "ingest-client-id"
    with contextlib.suppress(FileNotFoundError):
        kept = path.read_text().strip()
        if kept:
            return kept
    client_id = f"edgefleet-ingest-{secrets.token_hex(4)}"
    data_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(client_id + "\n")
    return client_id


def _production_broker(app: FastAPI, settings: ServerSettings, sessions: sessionmaker[Session]) -> _MqttLogins:
    """In production broker mode, write Mosquitto's files and give each server client its own login."""
    if not settings.mosquitto.enabled:
        return _MqttLogins(settings.mqtt, settings.mqtt)
    accounts = MosquittoAccounts(settings.mosquitto, settings.mosquitto_dir(), settings.mqtt.port)
    _tls, logins = accounts.prepare()
    with sessions() as session:
        accounts.credentials_changed(session)
    app.state.broker_accounts = accounts
    log.info("broker_auth.ready", extra={"config": str(accounts.config_file)})
    return _MqttLogins(
        settings.mqtt.model_copy(update={"username": INGEST_USER, "password": SecretStr(logins.ingest_password)}),
        settings.mqtt.model_copy(update={"username": COMMANDS_USER, "password": SecretStr(logins.commands_password)}),
    )


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

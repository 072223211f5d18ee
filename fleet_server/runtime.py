"""What the running server holds between requests: database sessions, ingest, metrics and the package registry."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from sqlalchemy.orm import Session, sessionmaker

from fleet_server.ingest import Ingest
from fleet_server.key_distribution import KeyDistributor
from fleet_server.registry import PackageRegistry
from fleet_server.rollouts.commands import CommandPublisher
from fleet_server.settings import ServerSettings

__all__ = ["Runtime"]


@dataclass(frozen=True, slots=True)
class Runtime:
    settings: ServerSettings
    sessions: sessionmaker[Session]
    ingest: Ingest
    registry: CollectorRegistry
    packages: PackageRegistry
    commands: CommandPublisher
    keys: KeyDistributor

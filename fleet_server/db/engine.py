"""Engines and sessions: SQLite in WAL mode with foreign keys by default, PostgreSQL (or any SQLAlchemy URL) by URL."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

__all__ = ["EncodedJson", "make_engine", "make_session_factory"]


class EncodedJson(str):
    """JSON text already encoded (a message exactly as a device sent it): stored in a JSON column as it is."""


def _json_serializer(value: object) -> str:
    # ingest stores each message's own JSON: encoding it again from a parsed copy would cost as much as parsing
    return value if isinstance(value, EncodedJson) else json.dumps(value)


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, foreign keys and a busy timeout on every connection, PostgreSQL UTC."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in ("psycopg", "psycopg2"):
        # every time the server stores is UTC; in the cluster's own time zone they would come back with its offset
        return create_engine(
            url, pool_pre_ping=True, connect_args={"options": "-c timezone=UTC"}, json_serializer=_json_serializer
        )
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, json_serializer=_json_serializer)
    engine = create_engine(url, connect_args={"check_same_thread": False}, json_serializer=_json_serializer)

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # WAL lets the API read while ingest writes; the timeout waits out the other writer
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions bound to ``engine`` whose objects stay readable after commit."""
    return sessionmaker(engine, expire_on_commit=False)

"""Settings of the fleet server (``EDGEFLEET_SERVER_*`` environment variables), validated at start."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, Field, PositiveFloat, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["MqttSettings", "ServerSettings", "get_settings"]


class MqttSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    embedded_broker: bool = Field(default=True, description="run the amqtt broker inside the server process")
    username: str | None = None
    password: SecretStr | None = None


class ServerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EDGEFLEET_SERVER_", env_nested_delimiter="__", extra="forbid")

    data_dir: Path = Path(".edgefleet/server")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default: SQLite in data_dir")
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=0, le=65535)
    mqtt: MqttSettings = MqttSettings()
    ingest_queue_size: int = Field(default=10_000, ge=10)
    max_payload_bytes: int = Field(default=256 * 1024, ge=1024)
    offline_after_s: PositiveFloat = 60.0
    trusted_keys: list[Path] = Field(
        default_factory=list,
        description="public keys (signing.pub) that uploaded packages must be signed with; none: uploads are refused",
    )
    max_package_bytes: int = Field(default=256 * 1024 * 1024, ge=1024, description="largest package upload accepted")

    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file in the data folder."""
        return self.database_url or f"sqlite:///{(self.data_dir / 'fleet.db').resolve()}"

    def packages_dir(self) -> Path:
        """The folder of the content-addressed package store."""
        return self.data_dir / "packages"


@lru_cache(maxsize=1)
def get_settings() -> ServerSettings:
    """The server's settings from the environment, read once."""
    return ServerSettings()

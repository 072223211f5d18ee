"""Settings of the fleet server (``EDGEFLEET_SERVER_*`` environment variables), validated at start."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, Field, PositiveFloat, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from fleet_server.drift.settings import DriftSettings

__all__ = ["MosquittoSettings", "MqttSettings", "RateLimitSettings", "ServerSettings", "get_settings"]


class MqttSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    embedded_broker: bool = Field(default=True, description="run the amqtt broker inside the server process")
    username: str | None = None
    password: SecretStr | None = None
    ingest_client_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="the ingest's MQTT client id, the same at every start so the broker keeps its session and queues "
        "device reports while the server is down; default: one made at the first start and kept in data_dir "
        "(each worker of a share_group needs its own)",
    )
    share_group: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="ingest workers with the same group share the telemetry and events ($share/GROUP/...; Mosquitto)",
    )

    @model_validator(mode="after")
    def _check_share_group(self) -> MqttSettings:
        # amqtt has no shared subscriptions: it would take $share/... for a plain topic and deliver nothing
        if self.share_group is not None and self.embedded_broker:
            raise ValueError(
                "share_group needs a broker with shared subscriptions, and the embedded amqtt broker has none: "
                "set mqtt.embedded_broker=false and point mqtt.host/mqtt.port at Mosquitto (or EMQX)"
            )
        return self


class MosquittoSettings(BaseModel):
    """Production broker mode: the server keeps a Mosquitto's password file, ACL and TLS files in ``config_dir``."""

    enabled: bool = Field(
        default=False, description="write Mosquitto's logins, ACL and TLS files; needs an external broker"
    )
    config_dir: Path | None = Field(default=None, description="where the files go; default: data_dir/mosquitto")
    tls_port: int = Field(default=8883, ge=1, le=65535, description="the devices' TLS listener")
    # devices reach the TLS listener from the network: all interfaces is the point of it
    tls_bind: str = Field(default="0.0.0.0", description="address the TLS listener binds")  # noqa: S104
    tls_hostnames: list[str] = Field(
        default_factory=lambda: ["localhost", "127.0.0.1"],
        min_length=1,
        description="names and addresses devices reach the broker by (the broker certificate's subject alt names)",
    )
    pid_file: Path | None = Field(
        default=None, description="Mosquitto's pid_file: the server sends it SIGHUP after each change"
    )
    reload_command: list[str] | None = Field(
        default=None, description="run instead of SIGHUP after each change, e.g. ['systemctl', 'reload', 'mosquitto']"
    )


class RateLimitSettings(BaseModel):
    """Token buckets per client address (and per provisioning token): ``*_burst`` tries, refilled at ``*_per_s``."""

    enroll_burst: int = Field(default=120, ge=1, description="enrollments one address may send at once")
    enroll_per_s: PositiveFloat = Field(default=10.0, description="and then per second")
    enroll_token_failures_burst: int = Field(default=10, ge=1, description="refused enrollments per provisioning token")
    enroll_token_failures_per_s: PositiveFloat = 0.1
    signin_failures_burst: int = Field(default=10, ge=1, description="failed dashboard sign-ins one address may make")
    signin_failures_per_s: PositiveFloat = 0.1
    auth_failures_burst: int = Field(default=30, ge=1, description="API requests with a refused bearer token")
    auth_failures_per_s: PositiveFloat = 0.5


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
    root_keys: list[Path] = Field(
        default_factory=list,
        description="root public keys: packages signed by a key of the newest key list a root signed are accepted "
        "too, and the server hands that list to devices (at enrollment, and whenever one reports an older list)",
    )
    max_package_bytes: int = Field(default=256 * 1024 * 1024, ge=1024, description="largest package upload accepted")
    admin_token_file: Path | None = Field(
        default=None,
        description="where the first admin token is written (mode 0600) on first start; default: data_dir/admin.token",
    )
    public_url: str | None = Field(
        default=None, description="the address devices download packages from; default: http://http_host:http_port"
    )
    rollout_tick_s: PositiveFloat = Field(default=1.0, description="how often running rollouts advance")
    drift: DriftSettings = DriftSettings()
    mosquitto: MosquittoSettings = MosquittoSettings()
    rate_limits: RateLimitSettings = RateLimitSettings()

    @model_validator(mode="after")
    def _mosquitto_needs_external_broker(self) -> ServerSettings:
        if self.mosquitto.enabled and self.mqtt.embedded_broker:
            raise ValueError(
                "mosquitto.enabled writes an external Mosquitto's logins, and the embedded amqtt broker is on: "
                "set mqtt.embedded_broker=false and point mqtt.host/mqtt.port at Mosquitto's loopback listener"
            )
        return self

    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file in the data folder."""
        return self.database_url or f"sqlite:///{(self.data_dir / 'fleet.db').resolve()}"

    def resolved_public_url(self) -> str:
        """Where devices reach this server's HTTP API."""
        return self.public_url or f"http://{self.http_host}:{self.http_port}"

    def resolved_admin_token_file(self) -> Path:
        """Where the server writes the first admin token (the CLI and the tests read it there)."""
        return self.admin_token_file or self.data_dir / "admin.token"

    def mosquitto_dir(self) -> Path:
        """The folder of the Mosquitto files the server keeps in production broker mode."""
        return self.mosquitto.config_dir or self.data_dir / "mosquitto"

    def packages_dir(self) -> Path:
        """The folder of the content-addressed package store."""
        return self.data_dir / "packages"


@lru_cache(maxsize=1)
def get_settings() -> ServerSettings:
    """The server's settings from the environment, read once."""
    return ServerSettings()

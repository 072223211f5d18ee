"""Settings of the edge agent: a TOML file, overridden by ``EDGEFLEET_AGENT_*`` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, PositiveFloat, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from edge_agent.backends import DEFAULT_RUNTIMES
from edge_agent.sources.settings import SimulatedSourceSettings, SourceSettings
from edgefleet.errors import ConfigError
from edgefleet.ids import DeviceId
from edgefleet.profile import RuntimeName

__all__ = [
    "AgentSettings",
    "BrokerSettings",
    "EnrollmentSettings",
    "ReservoirSettings",
    "SimulatedSourceSettings",
    "UpdateSettings",
    "load_settings",
]


class BrokerSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    tls: bool = Field(default=False, description="TLS to the broker (usually port 8883)")
    ca_file: Path | None = Field(default=None, description="PEM CA of the broker's certificate; default: the system's")
    client_cert: Path | None = Field(default=None, description="PEM client certificate, for brokers that require one")
    client_key: Path | None = Field(default=None, description="PEM private key of client_cert (unencrypted)")
    insecure_skip_verify: bool = Field(default=False, description="accept any broker certificate: never in production")
    reconnect_min_s: PositiveFloat = Field(default=1.0, description="first reconnection delay (jittered, then doubled)")
    reconnect_max_s: PositiveFloat = Field(default=60.0, description="longest reconnection delay")
    outbox_max_messages: int = Field(default=10_000, ge=1, description="telemetry and events kept while offline")
    outbox_max_bytes: int = Field(default=16 * 1024 * 1024, ge=4096, description="their payloads' total size")

    @model_validator(mode="after")
    def _password_needs_username(self) -> BrokerSettings:
        if self.password is not None and self.username is None:
            raise ValueError("a broker password is set without a username: set broker.username too")
        return self

    @model_validator(mode="after")
    def _tls_files_need_tls(self) -> BrokerSettings:
        files = {"ca_file": self.ca_file, "client_cert": self.client_cert, "client_key": self.client_key}
        given = [name for name, path in files.items() if path is not None]
        if not self.tls and (given or self.insecure_skip_verify):
            raise ValueError(f"{', '.join(given) or 'insecure_skip_verify'} set without TLS: set broker.tls = true")
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("a client certificate needs its key: set both broker.client_cert and broker.client_key")
        missing = [f"{name} {path}" for name, path in files.items() if path is not None and not path.is_file()]
        if missing:
            raise ValueError(f"no such file: {', '.join(missing)}; give the path of the PEM file")
        return self

    @model_validator(mode="after")
    def _reconnect_min_below_max(self) -> BrokerSettings:
        if self.reconnect_min_s > self.reconnect_max_s:
            raise ValueError(
                f"reconnect_min_s {self.reconnect_min_s} exceeds reconnect_max_s {self.reconnect_max_s}: lower it"
            )
        return self


class UpdateSettings(BaseModel):
    """How the agent takes a model update: the download, and the health window that decides commit or rollback."""

    health_window_s: PositiveFloat = Field(default=60.0, description="how long a new model is watched before commit")
    health_min_inferences: int = Field(
        default=20, ge=0, description="answers needed to judge it; the window waits for them (up to 5 windows)"
    )
    max_error_rate: float = Field(default=0.05, ge=0.0, le=1.0, description="failed inferences allowed in the window")
    max_latency_ratio: float = Field(
        default=2.0, gt=1.0, description="p95 latency allowed, as a multiple of the previous model's on this device"
    )
    max_health_starts: int = Field(
        default=2, ge=1, le=10, description="restarts within the window before the crash-looping model is rolled back"
    )
    download_read_timeout_s: PositiveFloat = Field(default=30.0, description="longest wait for the next bytes")
    fsync_every_bytes: int = Field(default=1 << 20, ge=4096, description="downloaded bytes made durable at a time")
    auth_token: SecretStr | None = Field(default=None, description="bearer token the package server wants")


class ReservoirSettings(BaseModel):
    """The inputs kept for retraining: low-confidence ones and those outside the reference profile's range."""

    enabled: bool = True
    min_confidence: float = Field(
        default=0.6, ge=0.0, le=1.0, description="an answer less sure than this keeps its input as a candidate"
    )
    out_of_range: bool = Field(
        default=True, description="also keep inputs with a feature outside the range of the reference profile"
    )
    max_count: int = Field(default=256, ge=1, le=100_000, description="inputs kept at most")
    max_bytes: int = Field(default=16 * 1024 * 1024, ge=4096, description="their raw size at most")


class EnrollmentSettings(BaseModel):
    """Where and with what a new device enrolls on its first start (edge_agent.enroll)."""

    server_url: str = Field(pattern=r"^https?://", description="the fleet server, e.g. https://fleet.example.com")
    provisioning_token: SecretStr = Field(description="from an operator (POST /api/v1/provisioning-tokens)")


class AgentSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EDGEFLEET_AGENT_", env_nested_delimiter="__", extra="forbid")

    device_id: DeviceId
    profile: str = Field(default="x86-gateway", pattern=r"^[a-z0-9][a-z0-9-]{0,62}$", description="device profile id")
    data_dir: Path = Path(".edgefleet/agent")
    broker: BrokerSettings = BrokerSettings()
    package: Path | None = Field(default=None, description="the package to install and run at start")
    trusted_keys: list[Path] = Field(
        default_factory=list, description="public keys packages may be signed with, pinned (rotating them re-flashes)"
    )
    root_keys: list[Path] = Field(
        default_factory=list,
        description="root public keys: packages may also be signed with any key of the newest key list a root "
        "signed (from enrollment, a package or the server), so signing keys rotate over the air",
    )
    telemetry_interval_s: PositiveFloat = 10.0
    threads: int = Field(default=1, ge=1, le=64, description="inference threads")
    runtimes: list[RuntimeName] = Field(
        default_factory=lambda: list(DEFAULT_RUNTIMES),
        min_length=1,
        description="the inference runtimes of the device's profile, best first: the artifact run is the best one "
        "of these that is installed",
    )
    queue_size: int = Field(
        default=64, ge=1, le=100_000, description="inputs waiting for the model; past it new ones are dropped"
    )
    batch_size: int = Field(
        default=8, ge=1, le=1024, description="most queued inputs run together, when the model allows"
    )
    source: SourceSettings = Field(default_factory=SimulatedSourceSettings, description="where inputs come from")
    updates: UpdateSettings = UpdateSettings()
    reservoir: ReservoirSettings = ReservoirSettings()
    enrollment: EnrollmentSettings | None = Field(
        default=None, description="enroll at the fleet server on the first start and use the credentials it gives"
    )

    @model_validator(mode="after")
    def _package_needs_keys(self) -> AgentSettings:
        if self.package is not None and not self.trusted_keys and not self.root_keys:
            raise ValueError(
                "a package is set but no trusted_keys nor root_keys: set trusted_keys to the signer's signing.pub, "
                "or root_keys to the root.pub that certified it"
            )
        return self


def load_settings(config: Path | None = None, **overrides: object) -> AgentSettings:
    """Settings from ``config`` (TOML) and the environment, which wins; raises ConfigError with what to fix."""
    if config is not None and not config.is_file():
        raise ConfigError(f"the config file {config} does not exist", hint="pass the path of the agent's TOML file")

    class _FromFile(AgentSettings):
        model_config = SettingsConfigDict(toml_file=config)

        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    try:
        loaded = _FromFile(**overrides) if config is not None else AgentSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        raise ConfigError(
            f"agent settings: {where}: {first['msg']}",
            hint="fix it in the TOML file or in the EDGEFLEET_AGENT_* environment variables",
        ) from err
    return AgentSettings.model_validate(loaded.model_dump())

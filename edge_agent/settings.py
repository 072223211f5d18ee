"""Settings of the edge agent: a TOML file, overridden by ``EDGEFLEET_AGENT_*`` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, PositiveFloat, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from edgefleet.errors import ConfigError
from edgefleet.ids import DeviceId
from edgefleet.sensor_sim import FAULTS

__all__ = ["AgentSettings", "BrokerSettings", "SimulatedSourceSettings", "load_settings"]


class BrokerSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    keepalive_s: int = Field(default=30, ge=5, le=3600)

    @model_validator(mode="after")
    def _password_needs_username(self) -> BrokerSettings:
        if self.password is not None and self.username is None:
            raise ValueError("a broker password is set without a username: set broker.username too")
        return self


class SimulatedSourceSettings(BaseModel):
    kind: Literal["simulated"] = "simulated"
    fault: str = Field(default="normal", description=f"one of {', '.join(FAULTS)}")
    seed: int = 0
    # 0 rather than None for "no limit": TOML has no null, so None could not be written in the file
    windows_per_s: float = Field(default=20.0, ge=0, description="0: as fast as the model runs")

    @field_validator("fault")
    @classmethod
    def _known_fault(cls, fault: str) -> str:
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; choose from {', '.join(FAULTS)}")
        return fault


class AgentSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EDGEFLEET_AGENT_", env_nested_delimiter="__", extra="forbid")

    device_id: DeviceId
    profile: str = Field(default="x86-gateway", pattern=r"^[a-z0-9][a-z0-9-]{0,62}$", description="device profile id")
    data_dir: Path = Path(".edgefleet/agent")
    broker: BrokerSettings = BrokerSettings()
    package: Path | None = Field(default=None, description="the package to install and run at start")
    trusted_keys: list[Path] = Field(default_factory=list, description="public keys packages must be signed with")
    telemetry_interval_s: PositiveFloat = 10.0
    threads: int = Field(default=1, ge=1, le=64, description="inference threads")
    source: SimulatedSourceSettings = SimulatedSourceSettings()

    @model_validator(mode="after")
    def _package_needs_keys(self) -> AgentSettings:
        if self.package is not None and not self.trusted_keys:
            raise ValueError("a package is set but no trusted_keys: set trusted_keys to the signer's signing.pub")
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

"""What an operator asks of a rollout: which package, to which devices, in which waves, held to which gates."""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, model_validator

from edgefleet.ids import DeviceId

__all__ = ["DEFAULT_WAVES", "Gates", "RolloutSpec", "RolloutState", "Selector", "Wave"]


class RolloutState(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    ABORTED = "aborted"


class Selector(BaseModel):
    """The devices a rollout takes: the listed ids, plus every device that has all ``tags`` and one of
    ``profiles`` (an empty list matches any). Devices that come to match later join the rollout too."""

    model_config = ConfigDict(extra="forbid")

    device_ids: list[DeviceId] = Field(default_factory=list, max_length=100_000)
    tags: list[str] = Field(default_factory=list, max_length=64)
    profiles: list[str] = Field(default_factory=list, max_length=64)

    def matches(self, device_id: str, tags: list[str], profile: str) -> bool:
        if device_id in self.device_ids:
            return True
        if self.device_ids and not self.tags and not self.profiles:
            return False  # only the listed ones
        return set(self.tags) <= set(tags) and (not self.profiles or profile in self.profiles)


class Wave(BaseModel):
    """How many of the selected devices run the package once this wave is done: a count or a share."""

    model_config = ConfigDict(extra="forbid")

    devices: PositiveInt | None = None
    percent: float | None = Field(default=None, gt=0, le=100)

    @model_validator(mode="after")
    def _one_of(self) -> Wave:
        if (self.devices is None) == (self.percent is None):
            raise ValueError("a wave gives either `devices` or `percent`, not both and not neither")
        return self

    def target(self, selected: int) -> int:
        """Devices that run the package at the end of this wave, out of ``selected``."""
        if self.devices is not None:
            return min(self.devices, selected)
        return min(selected, math.ceil(selected * (self.percent or 0.0) / 100))


# a canary, then 10 %, half, everyone
DEFAULT_WAVES = (Wave(devices=1), Wave(percent=10), Wave(percent=50), Wave(percent=100))


class Gates(BaseModel):
    """What a wave must show after its bake time before the next one starts."""

    model_config = ConfigDict(extra="forbid")

    bake_s: float = Field(default=600.0, ge=0, description="how long a wave runs before it is judged")
    min_reported: float = Field(
        default=0.9, ge=0, le=1, description="share of the wave's devices that finished their update"
    )
    min_success: float = Field(default=0.95, ge=0, le=1, description="share of those that committed")
    max_error_rate: float = Field(
        default=0.05, ge=0, le=1, description="failed inferences of updated devices, in their telemetry since"
    )
    max_latency_ratio: PositiveFloat = Field(
        default=1.5, description="p95 latency after / before the update, on the same devices (median over them)"
    )
    wave_timeout_s: PositiveFloat = Field(
        default=3600.0, description="a wave without enough reports by then fails its reported gate"
    )
    drift_fails_at: Literal["warn", "alarm"] | None = Field(
        default="alarm",
        description="the drift level, of an updated device or of its cohort on the new version since the wave "
        "started, at which the wave fails (judged at the end of the bake time; not enough data never fails it, and a "
        "cohort fresh on the new version is judged against the package only with the server's min_cohort_devices, "
        "10 by default: a canary of a few devices passes); null: no drift gate",
    )


class RolloutSpec(BaseModel):
    """A rollout as created (``POST /api/v1/rollouts``); kept as it is for the audit trail."""

    model_config = ConfigDict(extra="forbid")

    package: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*@[0-9A-Za-z.+-]+$", description="name@version in the registry")
    selector: Selector = Field(default_factory=Selector)
    waves: list[Wave] = Field(default_factory=lambda: list(DEFAULT_WAVES), min_length=1, max_length=20)
    gates: Gates = Field(default_factory=Gates)
    on_failure: Literal["pause", "abort"] = Field(
        default="pause", description="what a failed gate does; abort also rolls the updated devices back"
    )
    download_deadline_s: PositiveFloat = Field(default=3600.0, description="each device's time to download")

    @model_validator(mode="after")
    def _waves_grow(self) -> RolloutSpec:
        shares = [w.percent for w in self.waves if w.percent is not None]
        if shares != sorted(shares):
            raise ValueError("wave shares must not shrink from one wave to the next")
        if self.waves[-1].percent not in (None, 100.0) and self.waves[-1].devices is None:
            raise ValueError("the last wave must reach 100 % (or name a device count)")
        return self

    @property
    def name(self) -> str:
        return self.package.split("@", 1)[0]

    @property
    def version(self) -> str:
        return self.package.split("@", 1)[1]

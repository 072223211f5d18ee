"""The four MQTT messages (status, telemetry, events, commands), each versioned by its ``schema``."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, TypeAdapter

from edgefleet._contract import Contract
from edgefleet.ids import DeviceId, ModelName, Sha256Hex
from edgefleet.keylist import SignedKeyListV1
from edgefleet.semver import SemVerStr

__all__ = [
    "ActiveModel",
    "AnyMessage",
    "AssignCommand",
    "CommandV1",
    "ConfigureCommand",
    "EventKind",
    "EventV1",
    "KeysCommand",
    "LatencyStats",
    "RollbackCommand",
    "StatusV1",
    "SystemStats",
    "TelemetryV1",
    "UploadSamplesCommand",
    "parse_message",
]


class _Envelope(Contract):
    """What every message carries: who sent it, its place in the sender's sequence, and when."""

    device_id: DeviceId
    seq: NonNegativeInt = Field(description="per device and per topic, +1 each message; duplicates repeat it")
    ts: NonNegativeFloat = Field(description="seconds since the Unix epoch, device clock")


class ActiveModel(Contract):
    name: ModelName
    version: SemVerStr
    sha256: Sha256Hex = Field(description="of the package's manifest, which pins every file")
    artifact: str
    slot: Literal["a", "b"] = "a"


class StatusV1(_Envelope):
    """Retained, and also the last will (state ``offline``): the device's own account of itself."""

    schema_: Literal["ef.status.v1"] = Field(default="ef.status.v1", alias="schema")
    state: Literal["online", "offline"]
    agent_version: SemVerStr
    profile: str = Field(max_length=64)
    model: ActiveModel | None = None
    keys_version: NonNegativeInt | None = Field(
        default=None,
        description="the version of the signing-key list the device trusts: 0 before its first, absent when the "
        "device has no root key (its keys are pinned)",
    )


class LatencyStats(Contract):
    p50_ms: NonNegativeFloat
    p95_ms: NonNegativeFloat
    max_ms: NonNegativeFloat


class SystemStats(Contract):
    cpu_percent: NonNegativeFloat
    rss_bytes: NonNegativeInt
    temperature_c: float | None = None


class TelemetryV1(_Envelope):
    """One message per interval, aggregated on the device (never one per inference)."""

    schema_: Literal["ef.telemetry.v1"] = Field(default="ef.telemetry.v1", alias="schema")
    interval_s: PositiveFloat
    model: ActiveModel | None = None
    inference_count: NonNegativeInt
    error_count: NonNegativeInt = 0
    drop_count: NonNegativeInt = 0
    latency: LatencyStats | None = None
    class_counts: list[NonNegativeInt] = Field(default_factory=list, max_length=10_000)
    confidence_counts: list[NonNegativeInt] = Field(default_factory=list, max_length=1024)
    confidence_sum: NonNegativeFloat | None = Field(
        default=None, description="sum of the predictions' confidences (top probability), for the accuracy estimate"
    )
    sketches: dict[str, list[NonNegativeInt]] = Field(
        default_factory=dict, description="per reference feature, live counts in the reference bins"
    )
    system: SystemStats | None = None


class EventKind(StrEnum):
    ASSIGNED = "assigned"
    DOWNLOADING = "downloading"
    VERIFIED = "verified"
    STAGED = "staged"
    SMOKE_TESTED = "smoke-tested"
    ACTIVE = "active"
    COMMITTED = "committed"
    FAILED = "failed"
    ROLLED_BACK = "rolled-back"
    ERROR = "error"


class EventV1(_Envelope):
    schema_: Literal["ef.event.v1"] = Field(default="ef.event.v1", alias="schema")
    kind: EventKind
    rollout_id: str | None = Field(default=None, max_length=64)
    package: str | None = Field(default=None, max_length=128, description="name@version")
    reason: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9-]{1,64}$",
        description="why an update failed or rolled back, machine-readable (e.g. bad-signature, downgrade, latency)",
    )
    detail: str = Field(default="", max_length=2000)


class AssignCommand(Contract):
    action: Literal["assign"] = "assign"
    rollout_id: str = Field(max_length=64)
    package: str = Field(max_length=128, description="name@version")
    url: str = Field(max_length=2048)
    sha256: Sha256Hex = Field(description="of the package file")
    size_bytes: NonNegativeInt
    deadline_ts: NonNegativeFloat
    allow_downgrade: bool = Field(default=False, description="an operator's explicit rollback to an older version")


class RollbackCommand(Contract):
    action: Literal["rollback"] = "rollback"
    rollout_id: str | None = Field(default=None, max_length=64)
    reason: str = Field(default="", max_length=2000)


class ConfigureCommand(Contract):
    action: Literal["configure"] = "configure"
    telemetry_interval_s: PositiveFloat | None = None


class KeysCommand(Contract):
    """A newer root-signed list of signing keys; the device adopts it when its root signed it and it is newer."""

    action: Literal["keys"] = "keys"
    key_list: SignedKeyListV1


class UploadSamplesCommand(Contract):
    """Send the kept drifted and low-confidence inputs: devices sit behind NAT, so the server asks, the device
    POSTs them (one .npz) to ``url`` with its own token."""

    action: Literal["upload-samples"] = "upload-samples"
    request_id: str = Field(pattern=r"^[a-z0-9-]{1,64}$", description="names the upload on the server")
    url: str = Field(max_length=2048)
    max_count: int = Field(default=256, ge=1, le=100_000, description="most samples to send")
    max_bytes: int = Field(default=32 * 1024 * 1024, ge=1024, description="largest upload the server takes")


class CommandV1(_Envelope):
    """Server to device; ``device_id`` is the target and ``seq`` counts per target device."""

    schema_: Literal["ef.command.v1"] = Field(default="ef.command.v1", alias="schema")
    command: Annotated[
        AssignCommand | RollbackCommand | ConfigureCommand | UploadSamplesCommand | KeysCommand,
        Field(discriminator="action"),
    ]


AnyMessage = Annotated[StatusV1 | TelemetryV1 | EventV1 | CommandV1, Field(discriminator="schema_")]
_ANY: TypeAdapter[StatusV1 | TelemetryV1 | EventV1 | CommandV1] = TypeAdapter(AnyMessage)


def parse_message(payload: bytes | bytearray | str) -> StatusV1 | TelemetryV1 | EventV1 | CommandV1:
    """Validate a JSON payload into its message class by ``schema``; raises pydantic.ValidationError."""
    return _ANY.validate_json(payload)

"""The device profile (schema ``ef.profile.v1``): what a class of device can run, and how fast."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveFloat, PositiveInt

from edgefleet._contract import Contract

__all__ = ["DeviceProfile", "RuntimeName"]

# inference runtimes by the name profiles and agent settings use; coreml and executorch take mobile bundles
RuntimeName = Literal["onnxruntime", "litert", "tflite-runtime", "coreml", "executorch"]


class DeviceProfile(Contract):
    schema_: Literal["ef.profile.v1"] = Field(default="ef.profile.v1", alias="schema")
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    name: str = Field(max_length=128)
    arch: Literal["x86_64", "arm64", "armv7"]
    cpu: str = Field(max_length=128, description="SoC and cores, e.g. BCM2711, 4x Cortex-A72 @ 1.5 GHz")
    cores: PositiveInt
    memory_mb: PositiveInt
    runtimes: list[RuntimeName] = Field(
        min_length=1,
        description="inference runtimes the device can run, best first; coreml and executorch take mobile bundles",
    )
    accelerators: list[str] = Field(default_factory=list)
    has_camera: bool = False
    latency_factor: PositiveFloat = Field(
        description="single-thread inference time relative to the reference x86_64 machine (an estimate)"
    )

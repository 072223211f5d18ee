"""Settings of each input source, told apart by ``kind`` (the ``[source]`` table of the agent's TOML file)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Discriminator, Field, PositiveInt, Tag, field_validator

from edgefleet.sensor_sim import FAULTS

__all__ = [
    "CameraSourceSettings",
    "ImageFolderSourceSettings",
    "ReplaySourceSettings",
    "SerialSourceSettings",
    "SimulatedCameraSettings",
    "SimulatedSourceSettings",
    "SourceSettings",
]

# 0 rather than None for "no limit" in the fields below: TOML has no null, so None could not be written in the file


class SimulatedSourceSettings(BaseModel):
    kind: Literal["simulated"] = "simulated"
    fault: str = Field(default="normal", description=f"one of {', '.join(FAULTS)}")
    seed: int = 0
    windows_per_s: float = Field(default=20.0, ge=0, description="0: as fast as the model runs")

    @field_validator("fault")
    @classmethod
    def _known_fault(cls, fault: str) -> str:
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; choose from {', '.join(FAULTS)}")
        return fault


class ReplaySourceSettings(BaseModel):
    kind: Literal["replay"]
    path: Path = Field(description="a .csv (header row of channel names) or .parquet recording")
    hop: PositiveInt | None = Field(default=None, description="samples between window starts; unset: the window length")
    speed: float = Field(
        default=1.0, ge=0, description="1: real time at the model's sample rate; 0: as fast as it runs"
    )
    loop: bool = Field(default=False, description="start again at the end instead of stopping")


class SerialSourceSettings(BaseModel):
    kind: Literal["serial"]
    port: str = Field(min_length=1, description="e.g. /dev/ttyUSB0, or a pyserial URL")
    baudrate: PositiveInt = 115200
    hop: PositiveInt | None = Field(default=None, description="samples between window starts; unset: the window length")


class CameraSourceSettings(BaseModel):
    kind: Literal["camera"]
    device: int | str = Field(default=0, description="a camera index, or an rtsp:// or http(s):// URL")
    max_fps: float = Field(default=0.0, ge=0, description="frames handed to the model per second; 0: every frame")

    @field_validator("device")
    @classmethod
    def _index_or_url(cls, device: int | str) -> int | str:
        # an environment variable always arrives as text: "0" means the camera index, not a file named 0
        if isinstance(device, str) and device.isdigit():
            return int(device)
        if isinstance(device, int) and device < 0:
            raise ValueError(f"camera index {device} is negative; use 0 for the first camera")
        return device


class ImageFolderSourceSettings(BaseModel):
    kind: Literal["image_folder"]
    path: Path = Field(description="a folder of .png/.jpg/.jpeg images, read in sorted order")
    loop: bool = Field(default=False, description="start again after the last image instead of stopping")
    images_per_s: float = Field(default=0.0, ge=0, description="0: as fast as the model runs")


class SimulatedCameraSettings(BaseModel):
    kind: Literal["simulated_camera"]
    seed: int = 0
    images_per_s: float = Field(default=2.0, ge=0, description="0: as fast as the model runs")
    defect_rate: float = Field(default=0.1, ge=0, le=1, description="the share of parts with a scratch or a spot")


def _kind(value: object) -> str:
    # a [source] table without `kind` is the simulated source, as it was before there were other kinds
    found = value.get("kind", "simulated") if isinstance(value, dict) else getattr(value, "kind", "simulated")
    return str(found)


SourceSettings = Annotated[
    Annotated[SimulatedSourceSettings, Tag("simulated")]
    | Annotated[ReplaySourceSettings, Tag("replay")]
    | Annotated[SerialSourceSettings, Tag("serial")]
    | Annotated[CameraSourceSettings, Tag("camera")]
    | Annotated[ImageFolderSourceSettings, Tag("image_folder")]
    | Annotated[SimulatedCameraSettings, Tag("simulated_camera")],
    Discriminator(_kind),
]

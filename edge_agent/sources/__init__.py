"""Input sources: where the windows or images the model sees come from."""

from __future__ import annotations

import threading
from typing import overload

import numpy as np

from edge_agent.sources._errors import SourceError, SourceLost
from edge_agent.sources._protocol import Source
from edge_agent.sources._reconnect import Backoff, Losses
from edge_agent.sources.camera import CameraSource
from edge_agent.sources.image_folder import ImageFolderSource
from edge_agent.sources.replay import ReplaySource
from edge_agent.sources.serial_lines import SerialLineSource
from edge_agent.sources.settings import (
    CameraSourceSettings,
    ImageFolderSourceSettings,
    ReplaySourceSettings,
    SerialSourceSettings,
    SimulatedCameraSettings,
    SimulatedSourceSettings,
    SourceSettings,
)
from edge_agent.sources.simulated import SimulatedSensor
from edge_agent.sources.simulated_camera import SimulatedCamera
from edgefleet.errors import ConfigError
from edgefleet.manifest import ImagePreprocessing, Preprocessing, SensorPreprocessing
from edgefleet.sensor_sim import CHANNELS, WINDOW_LENGTH

__all__ = [
    "Backoff",
    "CameraSource",
    "ImageFolderSource",
    "Losses",
    "ReplaySource",
    "SerialLineSource",
    "SimulatedCamera",
    "SimulatedSensor",
    "Source",
    "SourceError",
    "SourceLost",
    "open_source",
]

_SENSOR_KINDS = "simulated, replay or serial"
_IMAGE_KINDS = "camera, image_folder or simulated_camera"


@overload
def open_source(settings: SourceSettings, spec: SensorPreprocessing, stop: threading.Event) -> Source: ...
@overload
def open_source(settings: SourceSettings, spec: ImagePreprocessing, stop: threading.Event) -> Source[np.uint8]: ...
def open_source(settings: SourceSettings, spec: Preprocessing, stop: threading.Event) -> Source | Source[np.uint8]:
    """The source ``settings`` describe, for a model with the preprocessing ``spec`` (the manifest's).

    Raises ConfigError when the source gives what the model does not take (images for a sensor model, or the
    other way round), or a missing optional library; InputError for a missing file or column.
    """
    if isinstance(spec, SensorPreprocessing):
        match settings:
            case SimulatedSourceSettings():
                _check_simulated_fits(spec)
                return SimulatedSensor(settings, stop)
            case ReplaySourceSettings():
                return ReplaySource(settings, spec, stop)
            case SerialSourceSettings():
                return SerialLineSource(settings, spec, stop)
        channels = ", ".join(c.name for c in spec.channels)
        raise ConfigError(
            f"the source kind {settings.kind!r} gives images, but the model takes sensor windows ({channels})",
            hint=f"set [source] kind to {_SENSOR_KINDS}",
        )
    match settings:
        case CameraSourceSettings():
            return CameraSource(settings, spec, stop)
        case ImageFolderSourceSettings():
            return ImageFolderSource(settings, spec, stop)
        case SimulatedCameraSettings():
            return SimulatedCamera(settings, spec, stop)
    raise ConfigError(
        f"the source kind {settings.kind!r} gives sensor windows, but the model takes "
        f"{spec.width}x{spec.height} images",
        hint=f"set [source] kind to {_IMAGE_KINDS}",
    )


def _check_simulated_fits(spec: SensorPreprocessing) -> None:
    names = [c.name for c in spec.channels]
    simulated = [name for name, _unit in CHANNELS]
    if names != simulated or spec.window_length != WINDOW_LENGTH:
        raise ConfigError(
            f"the simulated source gives windows of {WINDOW_LENGTH} samples of {', '.join(simulated)}; the model "
            f"needs {spec.window_length} samples of {', '.join(names)}",
            hint="replay a recording of the model's channels instead (kind = replay)",
        )

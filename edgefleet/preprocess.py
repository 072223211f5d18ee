"""Turn raw sensor windows or images into model inputs exactly as the manifest says (agent and export share it)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from edgefleet.errors import InputError
from edgefleet.manifest import ImagePreprocessing, Preprocessing, SensorPreprocessing

__all__ = ["prepare_images", "prepare_inputs", "prepare_sensor_windows"]


def prepare_sensor_windows(raw: npt.ArrayLike, spec: SensorPreprocessing) -> npt.NDArray[np.float32]:
    """Scale windows shaped (C, L) or (N, C, L) per channel into a float32 batch (N, C, L).

    Raises InputError when the shape does not match the spec or a value is not finite.
    """
    batch = np.asarray(raw, dtype=np.float32)
    if batch.ndim == 2:
        batch = batch[None]
    expected = (len(spec.channels), spec.window_length)
    if batch.ndim != 3 or batch.shape[1:] != expected:
        raise InputError(
            f"sensor windows have shape {tuple(np.shape(raw))}, the model needs (N, {expected[0]}, {expected[1]})",
            hint="feed windows of the package's channels and window length (`edgefleet package inspect`)",
        )
    if not np.isfinite(batch).all():
        raise InputError("a sensor window holds NaN or infinity", hint="drop or repair the window first")
    mean = np.asarray([c.mean for c in spec.channels], dtype=np.float32)[None, :, None]
    std = np.asarray([c.std for c in spec.channels], dtype=np.float32)[None, :, None]
    return np.ascontiguousarray((batch - mean) / std, dtype=np.float32)


def prepare_images(raw: npt.ArrayLike, spec: ImagePreprocessing) -> npt.NDArray[np.float32]:
    """Turn uint8 RGB images (H, W, 3) or (N, H, W, 3) into a normalised float32 batch (N, 3, H, W).

    Raises InputError when the size does not match the spec.
    """
    batch = np.asarray(raw)
    if batch.ndim == 3:
        batch = batch[None]
    expected = (spec.height, spec.width, 3)
    if batch.ndim != 4 or batch.shape[1:] != expected:
        raise InputError(
            f"images have shape {tuple(np.shape(raw))}, the model needs (N, {spec.height}, {spec.width}, 3) RGB",
            hint="resize the images to the package's input size first (`edgefleet package inspect`)",
        )
    if spec.colour_order == "BGR":
        batch = batch[..., ::-1]
    scaled = batch.astype(np.float32) / 255.0
    mean = np.asarray(spec.mean, dtype=np.float32)
    std = np.asarray(spec.std, dtype=np.float32)
    return np.ascontiguousarray(((scaled - mean) / std).transpose(0, 3, 1, 2), dtype=np.float32)


def prepare_inputs(raw: npt.ArrayLike, spec: Preprocessing) -> npt.NDArray[np.float32]:
    """Sensor windows or images, whichever the spec describes, as the model's input batch."""
    if isinstance(spec, SensorPreprocessing):
        return prepare_sensor_windows(raw, spec)
    return prepare_images(raw, spec)

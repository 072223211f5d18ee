"""Turn raw sensor windows into model inputs exactly as the manifest says (the agent and export share it)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from edgefleet.errors import InputError
from edgefleet.manifest import SensorPreprocessing

__all__ = ["prepare_sensor_windows"]


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

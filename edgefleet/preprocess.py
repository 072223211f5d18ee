"""Turn raw sensor windows or images into model inputs exactly as the manifest says (agent and export share it)."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from edgefleet.errors import InputError
from edgefleet.manifest import ImagePreprocessing, Preprocessing, SensorPreprocessing

__all__ = ["InputPreparer", "prepare_images", "prepare_inputs", "prepare_sensor_windows"]


class InputPreparer:
    """``prepare_inputs`` for one spec, with its constants computed once: the agent prepares every input
    of a model with one of these, where rebuilding the per-channel arrays would cost more than the scaling."""

    def __init__(self, spec: Preprocessing) -> None:
        self.spec = spec
        if isinstance(spec, SensorPreprocessing):
            self._mean = np.asarray([c.mean for c in spec.channels], dtype=np.float32)[None, :, None]
            self._std = np.asarray([c.std for c in spec.channels], dtype=np.float32)[None, :, None]
        else:
            self._mean = np.asarray(spec.mean, dtype=np.float32)
            self._std = np.asarray(spec.std, dtype=np.float32)
        # single()'s batch of one, and zeros of one input's shape for its finiteness check; made on first use
        self._buffers: tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]] | None = None

    def __call__(self, raw: npt.ArrayLike) -> npt.NDArray[np.float32]:
        if isinstance(self.spec, SensorPreprocessing):
            return _scale_sensor_windows(raw, self.spec, self._mean, self._std)
        return _scale_images(raw, self.spec, self._mean, self._std)

    def single(self, raw: npt.NDArray[np.generic]) -> npt.NDArray[np.float32]:
        """``self(raw[None])``, the same values and errors, written into a buffer this preparer reuses: valid
        until its next call. The agent's path for one input, where allocating the batch costs as much as
        scaling it, and an unchanged buffer stays bound to the runtime."""
        spec = self.spec
        if not isinstance(spec, SensorPreprocessing) or raw.shape != (len(spec.channels), spec.window_length):
            return self(raw[None])  # images and wrong shapes: the model dominates, or the batch path says what is wrong
        window = np.asarray(raw, dtype=np.float32)
        if self._buffers is None:
            self._buffers = (np.empty((1, *window.shape), dtype=np.float32), np.zeros(window.shape, dtype=np.float32))
        one, zeros = self._buffers
        # one call without a temporary: each term is 0 for a finite value, NaN for NaN or infinity (times 0)
        if not math.isfinite(np.vdot(window, zeros)):
            raise InputError("a sensor window holds NaN or infinity", hint="drop or repair the window first")
        # the batch path's (batch - mean) / std, float32 step by step, so the values are identical
        np.subtract(window, self._mean[0], out=one[0])
        np.divide(one, self._std, out=one)
        return one


def prepare_sensor_windows(raw: npt.ArrayLike, spec: SensorPreprocessing) -> npt.NDArray[np.float32]:
    """Scale windows shaped (C, L) or (N, C, L) per channel into a float32 batch (N, C, L).

    Raises InputError when the shape does not match the spec or a value is not finite.
    """
    return InputPreparer(spec)(raw)


def _scale_sensor_windows(
    raw: npt.ArrayLike, spec: SensorPreprocessing, mean: npt.NDArray[np.float32], std: npt.NDArray[np.float32]
) -> npt.NDArray[np.float32]:
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
    return np.ascontiguousarray((batch - mean) / std, dtype=np.float32)


def prepare_images(raw: npt.ArrayLike, spec: ImagePreprocessing) -> npt.NDArray[np.float32]:
    """Turn uint8 RGB images (H, W, 3) or (N, H, W, 3) into a normalised float32 batch (N, 3, H, W).

    Raises InputError when the size does not match the spec.
    """
    return InputPreparer(spec)(raw)


def _scale_images(
    raw: npt.ArrayLike, spec: ImagePreprocessing, mean: npt.NDArray[np.float32], std: npt.NDArray[np.float32]
) -> npt.NDArray[np.float32]:
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
    return np.ascontiguousarray(((scaled - mean) / std).transpose(0, 3, 1, 2), dtype=np.float32)


def prepare_inputs(raw: npt.ArrayLike, spec: Preprocessing) -> npt.NDArray[np.float32]:
    """Sensor windows or images, whichever the spec describes, as the model's input batch."""
    return InputPreparer(spec)(raw)

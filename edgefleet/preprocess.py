"""Turn raw sensor windows or images into model inputs exactly as the manifest says (agent and export share it)."""

from __future__ import annotations

import math
from collections.abc import Sequence

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
        # many()'s reused batches by size, each with zeros of its shape for the finiteness check; made on first use
        self._buffers: dict[int, tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]] = {}

    def __call__(self, raw: npt.ArrayLike) -> npt.NDArray[np.float32]:
        if isinstance(self.spec, SensorPreprocessing):
            return _scale_sensor_windows(raw, self.spec, self._mean, self._std)
        return _scale_images(raw, self.spec, self._mean, self._std)

    def many(self, inputs: Sequence[npt.NDArray[np.generic]]) -> npt.NDArray[np.float32]:
        """``self(np.stack(inputs))``, the same values and errors, written into a buffer this preparer reuses for
        batches of this size: valid until its next call with as many inputs. The agent's serving path, where
        allocating the batch costs as much as scaling it, and an unchanged buffer stays bound to the runtime."""
        spec = self.spec
        if not isinstance(spec, SensorPreprocessing) or not inputs:
            return self(np.stack(inputs))  # images: the model dominates; an empty batch: the batch path says so
        shape = (len(spec.channels), spec.window_length)
        if any(np.shape(window) != shape for window in inputs):
            return self(np.stack(inputs))  # the batch path says what is wrong
        buffers = self._buffers.get(len(inputs))
        if buffers is None:
            buffers = (np.empty((len(inputs), *shape), dtype=np.float32), np.zeros((len(inputs), *shape), np.float32))
            self._buffers[len(inputs)] = buffers
        batch, zeros = buffers
        np.stack(inputs, out=batch)
        # one call without a temporary: each term is 0 for a finite value, NaN for NaN or infinity (times 0)
        if not math.isfinite(np.vdot(batch, zeros)):
            raise InputError("a sensor window holds NaN or infinity", hint="drop or repair the window first")
        # the batch path's (batch - mean) / std, float32 step by step, so the values are identical
        np.subtract(batch, self._mean, out=batch)
        np.divide(batch, self._std, out=batch)
        return batch


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

"""Refuse a model whose tensors contradict its spec, with what each side says and what to change."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from edgefleet.errors import InputError, UnsupportedModelError
from edgefleet.manifest import ArtifactFormat, SensorPreprocessing, Task
from export.importing.inspect_model import ModelInfo, TensorInfo
from export.importing.spec import ImportSpec

__all__ = ["check_inputs", "check_outputs", "sample_shape"]

# what the edge agent can feed each format: float32 always; LiteRT's backend also quantizes into int8/uint8
_INPUT_DTYPES: Final[Mapping[ArtifactFormat, frozenset[np.dtype[Any]]]] = {
    ArtifactFormat.ONNX: frozenset({np.dtype(np.float32)}),
    ArtifactFormat.TFLITE: frozenset({np.dtype(np.float32), np.dtype(np.int8), np.dtype(np.uint8)}),
}


def sample_shape(spec: ImportSpec) -> tuple[int, ...]:
    """One model input as ``edgefleet.preprocess`` makes it: (channels, length) or (3, height, width)."""
    p = spec.preprocessing
    if isinstance(p, SensorPreprocessing):
        return (len(p.channels), p.window_length)
    return (3, p.height, p.width)


def check_inputs(model: ModelInfo, spec: ImportSpec) -> TensorInfo:
    """The model's one input, once its dtype and shape fit the spec.

    Raises UnsupportedModelError for an input the edge agent cannot feed, InputError when it contradicts the spec.
    """
    if len(model.inputs) != 1:
        names = ", ".join(t.name for t in model.inputs)
        raise UnsupportedModelError(
            f"the model takes {len(model.inputs)} inputs ({names}); the edge agent feeds exactly one",
            hint="export the model with a single input tensor",
        )
    tensor = model.inputs[0]
    allowed = _INPUT_DTYPES[model.format]
    if tensor.dtype not in allowed:
        raise UnsupportedModelError(
            f"the model's input {tensor.name} is {tensor.dtype}; the edge agent feeds "
            f"{' or '.join(sorted(d.name for d in allowed))} to {model.format} models",
            hint="export the model with a float32 input (for fp16 ONNX: convert with keep_io_types=True)",
        )
    want = sample_shape(spec)
    dims_agree = len(tensor.shape) == len(want) + 1 and all(
        have is None or have == need for have, need in zip(tensor.shape[1:], want, strict=False)
    )
    if not dims_agree:
        raise InputError(
            f"the model's input {tensor.name} is shaped {_show(tensor.shape)}, "
            f"but the spec's preprocessing makes (N, {', '.join(map(str, want))}) ({_meaning(spec)})",
            hint=_shape_hint(tensor.shape, want),
        )
    if tensor.shape[0] not in (None, 1):
        raise UnsupportedModelError(
            f"the model's input {tensor.name} has a fixed batch of {tensor.shape[0]}; the agent runs one input at a time",
            hint="export the model with a free batch axis (or a batch of 1)",
        )
    return tensor


def check_outputs(outputs: Mapping[str, npt.NDArray[np.float32]], spec: ImportSpec) -> None:
    """Refuse a classifier whose first output is not one score per label; raises InputError."""
    if spec.task is not Task.CLASSIFICATION:
        return
    name, values = next(iter(outputs.items()))
    if values.ndim != 2 or values.shape[1] != len(spec.labels):
        raise InputError(
            f"the model's first output {name} is shaped {_show((None, *values.shape[1:]))}, "
            f"but the spec names {len(spec.labels)} labels, which needs (N, {len(spec.labels)})",
            hint="list one label per class score, in the order the model emits them",
        )


def _meaning(spec: ImportSpec) -> str:
    p = spec.preprocessing
    if isinstance(p, SensorPreprocessing):
        return f"{len(p.channels)} channels × {p.window_length} samples"
    return f"RGB images of {p.height} × {p.width}"


def _shape_hint(have: tuple[int | None, ...], want: tuple[int, ...]) -> str:
    # a channels-last model (Keras' default) holds the right sizes in another order
    channels_last = (*want[1:], want[0])
    if have[1:] == channels_last:
        return (
            f"the model takes channels last {_show(have)}; edgefleet feeds channels first (N, "
            f"{', '.join(map(str, want))}): add a transpose at the model's input, then import it again"
        )
    return "make the spec's channels and window length (or image size) match the model, or import the right model"


def _show(shape: tuple[int | None, ...]) -> str:
    return (
        "("
        + ", ".join("N" if i == 0 and d is None else "?" if d is None else str(d) for i, d in enumerate(shape))
        + ")"
    )

"""The LiteRT (TensorFlow Lite) backend: ai-edge-litert, or tflite-runtime on older device images.

A full-integer model takes and gives int8 tensors: the backend quantizes inputs and dequantizes outputs
with the scales the model carries, so callers always see float32. Models exported with a fixed batch of
one run a larger batch row by row.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edgefleet.errors import AgentError

__all__ = ["LiteRtBackend"]

# the maintained runtime first, then the package older Raspberry Pi images still carry
_INTERPRETER_MODULES = ("ai_edge_litert.interpreter", "tflite_runtime.interpreter")


def _interpreter_class() -> Any:
    for name in _INTERPRETER_MODULES:
        try:
            return importlib.import_module(name).Interpreter
        except ImportError:
            continue
    raise AgentError(
        "no LiteRT runtime is installed", hint="pip install ai-edge-litert (or tflite-runtime on older devices)"
    )


class LiteRtBackend:
    """One LiteRT interpreter on the CPU, called through the model's first signature."""

    def __init__(self, model: Path, threads: int = 1) -> None:
        interpreter_class = _interpreter_class()
        try:
            self._interpreter = interpreter_class(model_path=str(model), num_threads=threads)
            signatures = self._interpreter.get_signature_list()
            self._runner = self._interpreter.get_signature_runner(next(iter(signatures)))
        except (ValueError, RuntimeError, StopIteration) as err:
            raise AgentError(
                f"LiteRT cannot load {model.name}: {err}",
                hint="the package may target a newer LiteRT: update the agent, or roll back the model",
            ) from err
        self._input_details = self._runner.get_input_details()
        self._output_details = self._runner.get_output_details()

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(self._input_details)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(self._output_details)

    def run(self, inputs: Mapping[str, npt.NDArray[np.float32]]) -> dict[str, npt.NDArray[np.float32]]:
        """The model's outputs by name for one batch; raises AgentError when the runtime fails on it."""
        batch = len(next(iter(inputs.values())))
        fixed_batch = all(int(d["shape"][0]) == 1 for d in self._input_details.values())
        if batch > 1 and fixed_batch:
            rows = [self._run_once({k: v[i : i + 1] for k, v in inputs.items()}) for i in range(batch)]
            return {name: np.concatenate([r[name] for r in rows]) for name in self._output_details}
        return self._run_once(inputs)

    def _run_once(self, inputs: Mapping[str, npt.NDArray[np.float32]]) -> dict[str, npt.NDArray[np.float32]]:
        feed = {name: _to_model(np.asarray(inputs[name]), self._input_details[name]) for name in self._input_details}
        try:
            outputs = self._runner(**feed)
        except (ValueError, RuntimeError, KeyError) as err:
            raise AgentError(f"LiteRT failed on a batch: {err}", hint="check the input matches the model") from err
        return {name: _from_model(outputs[name], self._output_details[name]) for name in self._output_details}


def _to_model(values: npt.NDArray[np.float32], detail: Mapping[str, Any]) -> npt.NDArray[Any]:
    dtype = np.dtype(detail["dtype"])
    if dtype.kind != "i":
        return values.astype(dtype)
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    quantized: npt.NDArray[Any] = np.clip(np.round(values / scale) + zero_point, info.min, info.max).astype(dtype)
    return quantized


def _from_model(values: npt.NDArray[Any], detail: Mapping[str, Any]) -> npt.NDArray[np.float32]:
    if np.dtype(detail["dtype"]).kind != "i":
        return np.asarray(values, dtype=np.float32)
    scale, zero_point = detail["quantization"]
    real: npt.NDArray[np.float32] = ((values.astype(np.float32) - zero_point) * scale).astype(np.float32)
    return real

"""The onnxruntime backend."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from edgefleet.errors import AgentError

__all__ = ["OnnxBackend"]


class OnnxBackend:
    """One onnxruntime session on the CPU, with a fixed thread count."""

    def __init__(self, model: Path, threads: int = 1) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        # the agent runs one model at a time: a second pool of threads would only compete for the cores
        options.inter_op_num_threads = 1
        # the arena keeps freed blocks for reuse and can grow a process far beyond the model's size; a small
        # device runs one small model at batch 1, where the arena saves little time and costs much memory
        options.enable_cpu_mem_arena = False
        try:
            self._session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own unexported exception types
            raise AgentError(
                f"onnxruntime cannot load {model.name}: {err}",
                hint="the package may target a newer onnxruntime: update the agent, or roll back the model",
            ) from err
        self._inputs = tuple(i.name for i in self._session.get_inputs())
        self._outputs = tuple(o.name for o in self._session.get_outputs())

    @property
    def input_names(self) -> tuple[str, ...]:
        return self._inputs

    @property
    def output_names(self) -> tuple[str, ...]:
        return self._outputs

    def run(self, inputs: Mapping[str, npt.NDArray[np.float32]]) -> dict[str, npt.NDArray[np.float32]]:
        """The model's outputs by name for one batch; raises AgentError when the runtime fails on it."""
        try:
            outputs = self._session.run(None, dict(inputs))
        except Exception as err:  # onnxruntime's errors derive from Exception only (Fail, InvalidArgument, …)
            raise AgentError(f"onnxruntime failed on a batch: {err}", hint="check the input matches the model") from err
        return {name: np.asarray(o, dtype=np.float32) for name, o in zip(self._outputs, outputs, strict=True)}

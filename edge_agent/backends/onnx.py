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
    """One onnxruntime session on the CPU, with a fixed thread count.

    Runs go through one IOBinding rather than ``session.run``: an input array passed again (the agent's
    preparer reuses its buffer) stays bound, and no feed dict or output list is built per call, which is
    a tenth of a small model's run time. Outputs are copies the caller owns.
    """

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
        self._binding = self._session.io_binding()
        # what each input is bound to: kept referenced, so its memory cannot be freed or resized under the binding
        self._bound: dict[str, tuple[npt.NDArray[np.float32], tuple[int, ...]]] = {}

    @property
    def input_names(self) -> tuple[str, ...]:
        return self._inputs

    @property
    def output_names(self) -> tuple[str, ...]:
        return self._outputs

    def run(self, inputs: Mapping[str, npt.NDArray[np.float32]]) -> dict[str, npt.NDArray[np.float32]]:
        """The model's outputs by name for one batch; raises AgentError when the runtime fails on it."""
        try:
            reshaped = False
            for name in self._inputs:
                values = inputs[name]
                bound = self._bound.get(name)
                # the same array at the same shape is still bound to the same memory, whatever it now holds
                if bound is None or bound[0] is not values or bound[1] != values.shape:
                    reshaped = self._bind(name, values) or reshaped
            if reshaped:
                # a run keeps its outputs bound at their shape: let onnxruntime allocate them at the new one
                self._binding.clear_binding_outputs()
                for name in self._outputs:
                    self._binding.bind_output(name, "cpu")
            self._session.run_with_iobinding(self._binding)
            outputs = self._binding.copy_outputs_to_cpu()
        except KeyError as err:
            raise AgentError(f"no input named {err} in the batch", hint=f"feed {', '.join(self._inputs)}") from err
        except Exception as err:  # onnxruntime's errors derive from Exception only (Fail, InvalidArgument, …)
            raise AgentError(f"onnxruntime failed on a batch: {err}", hint="check the input matches the model") from err
        return {name: np.asarray(o, dtype=np.float32) for name, o in zip(self._outputs, outputs, strict=True)}

    def _bind(self, name: str, values: npt.NDArray[np.float32]) -> bool:
        """Bind ``values`` to input ``name``; whether the input's shape changed."""
        previous = self._bound.get(name)
        array = np.ascontiguousarray(values)
        self._binding.bind_cpu_input(name, array)
        self._bound[name] = (array, array.shape)
        return previous is None or previous[1] != array.shape

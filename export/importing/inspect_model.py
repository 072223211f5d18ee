"""What a model file says about itself before it runs: its inputs' names, shapes and dtypes, and its precision."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from edgefleet.errors import InputError
from edgefleet.manifest import ArtifactFormat, Precision

__all__ = ["INSPECTORS", "ModelInfo", "TensorInfo", "inspect_onnx", "inspect_tflite"]

# any of these operators means the graph computes in int8 (QDQ, QOperator or dynamic quantization)
_ONNX_QUANTIZED_OPS: Final = frozenset(
    {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv", "QLinearMatMul", "MatMulInteger"}
)


@dataclass(frozen=True, slots=True)
class TensorInfo:
    """One input or output as the model declares it; ``None`` is an axis of free size."""

    name: str
    shape: tuple[int | None, ...]
    dtype: np.dtype[Any]


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What the import needs before it runs the model; its outputs are taken from running it."""

    format: ArtifactFormat
    inputs: tuple[TensorInfo, ...]
    precision: Precision
    any_batch: bool  # whether its runtime takes a batch of any size (LiteRT's backend runs row by row)


def inspect_onnx(path: Path) -> ModelInfo:
    """Read an ONNX model's inputs without running it; raises InputError when it is not one edgefleet can ship."""
    import onnx
    from google.protobuf.message import DecodeError  # type: ignore[import-untyped]  # no types-protobuf here
    from onnx.external_data_helper import uses_external_data

    _require_file(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except DecodeError as err:
        raise InputError(
            f"{path} is not an ONNX model: {err}", hint="pass the .onnx file itself, as written by onnx.save"
        ) from err
    graph = model.graph
    weights = {t.name for t in graph.initializer}
    # older exporters list the weights among the inputs as well
    inputs = tuple(_onnx_tensor(v) for v in graph.input if v.name not in weights)
    if not inputs or not graph.output:
        raise InputError(f"{path} holds no ONNX graph with inputs and outputs", hint="pass a complete .onnx model")
    if any(uses_external_data(t) for t in graph.initializer):
        raise InputError(
            f"{path} keeps its weights in separate files, and a package holds one file per model",
            hint="save it as one file: onnx.save(onnx.load(path), out, save_as_external_data=False)",
        )
    return ModelInfo(
        format=ArtifactFormat.ONNX,
        inputs=inputs,
        precision=_onnx_precision(model),
        any_batch=all(t.shape[:1] == (None,) for t in inputs),
    )


def inspect_tflite(path: Path) -> ModelInfo:
    """Read a TFLite model's first signature with LiteRT; raises InputError when it cannot be loaded."""
    from ai_edge_litert.interpreter import Interpreter

    _require_file(path)
    try:
        interpreter = Interpreter(model_path=str(path))
        signatures = interpreter.get_signature_list()
    except (ValueError, RuntimeError) as err:
        raise InputError(f"{path} is not a TFLite model LiteRT can load: {err}", hint="pass the .tflite file") from err
    if not signatures:
        raise InputError(
            f"{path} has no signature, which the edge agent calls the model through",
            hint="convert it again from a SavedModel, or with litert-torch: both write the `serving_default` signature",
        )
    runner = interpreter.get_signature_runner(next(iter(signatures)))
    inputs = tuple(_tflite_tensor(n, d) for n, d in runner.get_input_details().items())
    dtypes = {np.dtype(d["dtype"]) for d in interpreter.get_tensor_details()}
    if any(t.dtype in (np.dtype(np.int8), np.dtype(np.uint8)) for t in inputs) or np.dtype(np.int8) in dtypes:
        precision = Precision.INT8
    elif np.dtype(np.float16) in dtypes:
        precision = Precision.FP16
    else:
        precision = Precision.FP32
    return ModelInfo(
        format=ArtifactFormat.TFLITE,
        inputs=inputs,
        precision=precision,
        any_batch=True,
    )


# reads each format the import takes straight (Keras is converted to TFLite first)
INSPECTORS: Final[Mapping[ArtifactFormat, Callable[[Path], ModelInfo]]] = {
    ArtifactFormat.ONNX: inspect_onnx,
    ArtifactFormat.TFLITE: inspect_tflite,
}


def _require_file(path: Path) -> None:
    if not path.is_file():
        raise InputError(f"no model file at {path}", hint="check the path of the model")


def _onnx_tensor(value: Any) -> TensorInfo:
    from onnx.helper import tensor_dtype_to_np_dtype

    tensor_type = value.type.tensor_type
    shape = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in tensor_type.shape.dim)
    return TensorInfo(value.name, shape, np.dtype(tensor_dtype_to_np_dtype(tensor_type.elem_type)))


def _onnx_precision(model: Any) -> Precision:
    from onnx import TensorProto

    if any(node.op_type in _ONNX_QUANTIZED_OPS for node in model.graph.node):
        return Precision.INT8
    if any(t.data_type == TensorProto.FLOAT16 for t in model.graph.initializer):
        return Precision.FP16
    return Precision.FP32


def _tflite_tensor(name: str, detail: Mapping[str, Any]) -> TensorInfo:
    shape = tuple(int(d) if d > 0 else None for d in detail["shape_signature"])
    return TensorInfo(name, shape, np.dtype(detail["dtype"]))

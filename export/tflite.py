"""PyTorch → TFLite (LiteRT) through litert-torch, and its quantized variants through ai-edge-quantizer.

No tensorflow is involved. The model's signature ``serving_default`` takes the input by the manifest's
name and returns its outputs by theirs, so a device addresses TFLite and ONNX artifacts alike.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from edgefleet.errors import InputError, UnsupportedModelError
from edgefleet.manifest import Precision
from train.models import fold_batch_norms

__all__ = ["export_tflite", "quantize_tflite"]

_SIGNATURE = "serving_default"


class _Named(nn.Module):
    """Returns the wrapped model's outputs as a dict, so the TFLite signature names them."""

    def __init__(self, model: nn.Module, output_names: tuple[str, ...]) -> None:
        super().__init__()
        self.model = model
        self.output_names = output_names

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        outputs = self.model(x)
        values = outputs if isinstance(outputs, tuple) else (outputs,)
        return dict(zip(self.output_names, values, strict=True))


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Keep the converters' progress lines, warnings and native log lines out of the user's terminal.

    The native libraries write to file descriptors 1 and 2 directly, so those are pointed at a scratch
    file for the duration (and restored whatever happens).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        with tempfile.TemporaryFile() as sink, warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)


def export_tflite(
    model: nn.Module, sample: torch.Tensor, out: Path, input_name: str, output_names: tuple[str, ...]
) -> Path:
    """Write ``model`` (BatchNorm folded, eval mode) as an fp32 ``.tflite`` for inputs shaped like ``sample`` (batch 1).

    Raises UnsupportedModelError when the converter fails, naming what it could not take.
    """
    # litert-torch keeps a BatchNorm1d as MUL and ADD, and with them the transposes around each Conv1d
    model = fold_batch_norms(model)
    try:
        with _quiet():
            import litert_torch

            converted = litert_torch.convert(_Named(model, output_names).eval(), sample_kwargs={input_name: sample})
            converted.export(str(out))
    except Exception as err:  # the converter raises many unrelated types; all mean the same to the user
        raise UnsupportedModelError(
            f"TFLite conversion failed: {str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__}",
            hint="the model uses an operator LiteRT cannot take; export ONNX only (--formats onnx) or change it",
        ) from err
    return out


def quantize_tflite(
    fp32_model: Path, precision: Precision, calibration: npt.NDArray[np.float32], input_name: str, out: Path
) -> Path:
    """Write the fp16 (weights) or full-integer int8 variant of ``fp32_model``; fp32 is copied.

    int8 is calibrated on ``calibration`` (model inputs, already scaled, one at a time as the model's batch
    is one) and takes and gives int8 tensors. Raises InputError for an empty calibration set.
    """
    if precision is Precision.FP32:
        out.write_bytes(fp32_model.read_bytes())
        _shorten_tensor_names(out)
        return out
    if precision is Precision.INT8 and len(calibration) == 0:
        raise InputError("the calibration set is empty", hint="int8 needs representative inputs: train with more data")
    with _quiet():
        from ai_edge_quantizer import quantizer
        from ai_edge_quantizer.algorithm_manager import AlgorithmName
        from ai_edge_quantizer.qtyping import TFLOperationName

        q = quantizer.Quantizer(str(fp32_model))
        if precision is Precision.FP16:
            q.add_weight_only_config(
                regex=".*",
                operation_name=TFLOperationName.ALL_SUPPORTED,
                num_bits=16,
                algorithm_key=AlgorithmName.FLOAT_CASTING,
            )
            result = q.quantize()
        else:
            static = _static_int8_recipe()
            q.load_quantization_recipe(static)
            samples = [{input_name: calibration[i : i + 1]} for i in range(len(calibration))]
            result = q.quantize(_calibrate_min_max(fp32_model, static, samples))
        result.export_model(str(out), overwrite=True)
        _shorten_tensor_names(out)
    return out


def _static_int8_recipe() -> Any:
    """int8 weights and activations; a weight scale per channel only in depthwise convolutions.

    A depthwise filter's channels never mix, so their ranges differ widely and need their own scales; a
    convolution's or a fully-connected layer's weights share one scale at no cost in accuracy on the
    reference models, and each of their channels would otherwise carry a float32 scale for its weights
    and one for its int32 bias (0.32 → 0.30 of fp32 on the image CNN, 0.31 → 0.29 on the sensor CNN).
    """
    from ai_edge_quantizer import recipe_manager
    from ai_edge_quantizer.qtyping import QuantGranularity, TFLOperationName

    manager = recipe_manager.RecipeManager()
    manager.add_static_config(".*", TFLOperationName.ALL_SUPPORTED, activation_num_bits=8, weight_num_bits=8)
    for operation in (TFLOperationName.CONV_2D, TFLOperationName.FULLY_CONNECTED):
        manager.add_static_config(
            ".*",
            operation,
            activation_num_bits=8,
            weight_num_bits=8,
            weight_granularity=QuantGranularity.TENSORWISE,
        )
    return manager.get_quantization_recipe()


def _calibrate_min_max(fp32_model: Path, static_recipe: Any, samples: list[dict[str, Any]]) -> Any:
    """Each tensor's range over the whole calibration set.

    ``Quantizer.calibrate`` keeps a moving average (factor 0.95) of each sample's min and max, so with one
    sample per call the ranges end near a typical sample's: on the image CNN the int8 input covered
    [-1.7, 1.9] of data reaching 4.6, clipped every bright image and cost 11 points of accuracy.
    """
    from ai_edge_quantizer import calibrator, recipe_manager
    from ai_edge_quantizer.utils import qsv_utils

    manager = recipe_manager.RecipeManager()
    manager.load_quantization_recipe(static_recipe)
    calib = calibrator.Calibrator(fp32_model.read_bytes(), qsv_update_func=qsv_utils.min_max_update)
    calib.calibrate({_SIGNATURE: samples}, manager)
    return calib.get_model_qsvs()


def _shorten_tensor_names(path: Path) -> None:
    """Name each tensor by its index, and write the model with identical vectors stored once.

    The converter names tensors by their MLIR source location, about a tenth of a small model's bytes;
    devices address inputs and outputs through the signature, which keeps its own names.
    """
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    for subgraph in model.subgraphs:
        for index, tensor in enumerate(subgraph.tensors):
            tensor.name = f"t{index}".encode()
    path.write_bytes(_pack_shared(model))


def _pack_shared(model: Any) -> bytes:
    """Serialize ``model`` (a ``ModelT``) with every identical quantization vector written once.

    The schema stores a zero point per channel as int64, always 0 for int8 weights and int32 biases: on
    the image CNN 2,252 of them, 18 kB, a fifth of the int8 file. A flatbuffer table may point at a
    vector another table already points at (vectors are addressed by offset), so one copy per length
    serves every tensor; the runtime's verifier and kernels read them as before.
    """
    import flatbuffers  # type: ignore[import-untyped]  # ships no type hints

    class _SharingBuilder(flatbuffers.Builder):  # type: ignore[misc]  # its base is untyped
        def __init__(self) -> None:
            super().__init__(1024)
            self._written: dict[tuple[str, bytes], int] = {}

        def CreateNumpyVector(self, x: npt.NDArray[Any]) -> int:  # flatbuffers names it so
            if x.dtype not in (np.int64, np.float32):  # buffers keep their own alignment and layout
                return int(super().CreateNumpyVector(x))
            key = (x.dtype.str, x.tobytes())
            if key not in self._written:
                self._written[key] = int(super().CreateNumpyVector(x))
            return self._written[key]

    builder = _SharingBuilder()
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())

"""PyTorch → ExecuTorch ``.pte`` delegated to XNNPACK, in fp32 or int8 through PT2E quantization."""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import torch

from edgefleet.errors import ExportError, InputError
from edgefleet.manifest import Precision

__all__ = ["EXECUTORCH_PRECISIONS", "check_pte_precision", "export_pte"]

EXECUTORCH_PRECISIONS: Final = frozenset({Precision.FP32, Precision.INT8})
_MISSING_HINT: Final = "pip install 'edgefleet[mobile]'"


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Keep the exporter's deprecation chatter (torch.jit, importlib.resources) out of the user's terminal."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def check_pte_precision(precision: Precision) -> None:
    """Refuse a precision the XNNPACK export does not make (fp16), before any work starts: InputError."""
    if precision not in EXECUTORCH_PRECISIONS:
        raise InputError(
            f"ExecuTorch bundles are fp32 or int8, not {precision.value}", hint="pass --executorch fp32 or int8"
        )


def export_pte(
    model: torch.nn.Module,
    sample: torch.Tensor,
    precision: Precision,
    calibration: npt.NDArray[np.float32],
    out: Path,
) -> Path:
    """Write ``model`` as an XNNPACK-delegated ``.pte`` for inputs shaped like ``sample`` (batch 1).

    int8 quantizes weights (per channel) and activations statically, calibrated on ``calibration`` one input
    at a time. Raises InputError for fp16, an empty calibration set or no ExecuTorch installed, ExportError
    when the export fails.
    """
    check_pte_precision(precision)
    if precision is Precision.INT8 and len(calibration) == 0:
        raise InputError("the calibration set is empty", hint="int8 needs representative inputs: train with more data")
    try:
        with _quiet():
            from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
            from executorch.exir import to_edge_transform_and_lower
    except ImportError as err:
        raise InputError(f"ExecuTorch cannot be imported: {err}", hint=_MISSING_HINT) from err
    model.eval()
    try:
        with _quiet(), torch.no_grad():
            if precision is Precision.INT8:
                model = _quantize(model, sample, calibration)
            program = torch.export.export(model, (sample,))
            lowered = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch()
            out.write_bytes(lowered.buffer)
    except Exception as err:  # the exporter raises many unrelated types; all mean the same to the user
        raise ExportError(
            f"ExecuTorch export failed: {type(err).__name__}: {str(err)[:400]}",
            hint="the model uses an operator ExecuTorch cannot lower; bundle without --executorch",
        ) from err
    return out


def _quantize(model: torch.nn.Module, sample: torch.Tensor, calibration: npt.NDArray[np.float32]) -> torch.nn.Module:
    """The PT2E int8 model for XNNPACK: observers placed by XNNPACKQuantizer, calibrated, then converted."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import (  # type: ignore[import-untyped]  # torchao ships no types
        convert_pt2e,
        prepare_pt2e,
    )

    quantizer = XNNPACKQuantizer()
    quantizer.set_global(get_symmetric_quantization_config(is_per_channel=True))
    prepared = prepare_pt2e(torch.export.export(model, (sample,)).module(), quantizer)
    for i in range(len(calibration)):
        prepared(torch.from_numpy(calibration[i : i + 1].copy()))
    converted: torch.nn.Module = convert_pt2e(prepared)
    return converted

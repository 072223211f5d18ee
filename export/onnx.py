"""PyTorch → ONNX (fp32) through the dynamo exporter, with a free batch axis."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from edgefleet.errors import UnsupportedModelError
from train.models import fold_batch_norms

__all__ = ["INPUT_NAME", "OUTPUT_NAME", "RUL_OUTPUT_NAME", "export_onnx", "shorten_names"]

INPUT_NAME = "x"
OUTPUT_NAME = "probs"
RUL_OUTPUT_NAME = "rul"


def export_onnx(
    model: nn.Module, sample: torch.Tensor, out: Path, output_names: tuple[str, ...] = (OUTPUT_NAME,)
) -> Path:
    """Write ``model`` (BatchNorm folded, eval mode) as a single-file ONNX model.

    Raises UnsupportedModelError when the exporter fails.
    """
    # the exporter folds BatchNorm itself; folding here too keeps the ONNX and TFLite graphs alike
    model = fold_batch_norms(model)
    batch = torch.export.Dim("batch", min=1, max=1024)
    try:
        with warnings.catch_warnings():
            # the exporter warns about its own internals (onnxscript, torch.export); nothing a user can act on
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model,
                (sample,),
                dynamo=True,
                input_names=[INPUT_NAME],
                output_names=list(output_names),
                dynamic_shapes={"x": {0: batch}},
                verbose=False,
            )
            if program is None:
                raise UnsupportedModelError("the ONNX exporter returned no program", hint="report this with the model")
            program.save(str(out), external_data=False)
        _strip_debug_info(out)
    except UnsupportedModelError:
        raise
    except Exception as err:  # the exporter raises many unrelated types; all mean the same to the user
        raise UnsupportedModelError(
            f"ONNX export failed: {type(err).__name__}: {err}",
            hint="check the model uses operators ONNX supports; rerun with --debug for the full trace",
        ) from err
    return out


def _strip_debug_info(path: Path) -> None:
    """Drop what only a debugger reads: the exporter's per-node stack traces and graph metadata.

    On a small model they are a fifth of the file, and every byte is downloaded by every device.
    """
    import onnx

    model = onnx.load(str(path))
    for node in model.graph.node:
        del node.metadata_props[:]
    del model.graph.metadata_props[:]
    onnx.save(model, str(path))


def shorten_names(path: Path) -> None:
    """Name every inner tensor and node by a number, keeping the graph's input and output names.

    The exporter and the quantizer name tensors after module paths and passes; on a small model those
    names are a tenth of the file, and every device downloads them.
    """
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    kept = {v.name for v in graph.input} | {v.name for v in graph.output}
    renamed: dict[str, str] = {}

    def short(name: str) -> str:
        if not name or name in kept:
            return name
        return renamed.setdefault(name, f"t{len(renamed)}")

    for index, node in enumerate(graph.node):
        node.name = f"n{index}"
        node.input[:] = [short(n) for n in node.input]
        node.output[:] = [short(n) for n in node.output]
    for initializer in graph.initializer:
        initializer.name = short(initializer.name)
    del graph.value_info[:]
    onnx.save(model, str(path))

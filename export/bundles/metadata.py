"""TFLite Model Metadata packed into a ``.tflite`` and read back out, as the upstream metadata populator does it.

The metadata flatbuffer goes into a new buffer of the model, named by an entry ``TFLITE_METADATA`` of the model's
``metadata`` list; associated files (labels) are appended to the model as a zip archive, which interpreters
ignore and the Android metadata extractor reads (tensorflow/tflite-support, ``metadata/python/metadata.py``,
``MetadataPopulator._populate_metadata_buffer`` and ``_populate_associated_files``). No tensorflow is needed.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping
from typing import Any, Final

from edgefleet.errors import ExportError, InputError
from export.bundles._schema import ModelMetadata, decode_metadata, encode_metadata

__all__ = ["METADATA_NAME", "embed_metadata", "read_associated_files", "read_metadata", "signature_tensor_names"]

METADATA_NAME: Final = "TFLITE_METADATA"


def _flatbuffer_utils() -> Any:
    # ai-edge-litert's own reader resolves buffers stored past the flatbuffer (offset/size) that large
    # models carry, so repacking keeps every weight
    from ai_edge_litert.tools import flatbuffer_utils

    return flatbuffer_utils


def embed_metadata(model: bytes, metadata: ModelMetadata, files: Mapping[str, bytes]) -> bytes:
    """The model with ``metadata`` in its ``TFLITE_METADATA`` buffer and ``files`` appended as a zip.

    Raises ExportError when the metadata does not describe the model's inputs and outputs one to one,
    or when it names an associated file that ``files`` does not hold.
    """
    fb = _flatbuffer_utils()
    tree = fb.read_model_from_bytearray(bytearray(model))
    if len(tree.subgraphs) != 1:
        raise ExportError(
            f"the model has {len(tree.subgraphs)} subgraphs; TFLite metadata describes one",
            hint="export the model with a single signature",
        )
    graph = tree.subgraphs[0]
    if (len(graph.inputs), len(graph.outputs)) != (len(metadata.inputs), len(metadata.outputs)):
        raise ExportError(
            f"the metadata describes {len(metadata.inputs)} inputs and {len(metadata.outputs)} outputs, "
            f"the model has {len(graph.inputs)} and {len(graph.outputs)}",
            hint="describe every input and output tensor, in the subgraph's order",
        )
    missing = sorted({f.name for f in metadata.associated_files} - set(files))
    if missing:
        raise ExportError(f"the metadata names files not given: {missing}", hint="pass every associated file")

    buffer = fb.schema_fb.BufferT()
    buffer.data = bytearray(encode_metadata(metadata))
    tree.metadata = [m for m in tree.metadata or [] if _name(m.name) != METADATA_NAME]  # replace, never duplicate
    tree.buffers.append(buffer)
    entry = fb.schema_fb.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(tree.buffers) - 1
    tree.metadata.append(entry)
    packed = io.BytesIO(bytes(fb.convert_object_to_bytearray(tree)))
    # mode "a" on bytes that are no zip appends an archive after them, as the upstream populator does
    with zipfile.ZipFile(packed, "a") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return packed.getvalue()


def signature_tensor_names(model: bytes) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The signature's names of the subgraph's inputs and outputs, in the subgraph's order (metadata's order)."""
    fb = _flatbuffer_utils()
    root = fb.schema_fb.Model.GetRootAs(model, 0)
    if root.SignatureDefsLength() == 0:
        raise ExportError("the model has no signature to name its tensors", hint="export it with litert-torch")
    signature, graph = root.SignatureDefs(0), root.Subgraphs(0)
    entries = [signature.Inputs(i) for i in range(signature.InputsLength())]
    entries += [signature.Outputs(i) for i in range(signature.OutputsLength())]
    by_index = {e.TensorIndex(): _name(e.Name()) for e in entries}
    inputs = tuple(by_index[int(t)] for t in graph.InputsAsNumpy())
    outputs = tuple(by_index[int(t)] for t in graph.OutputsAsNumpy())
    return inputs, outputs


def _name(raw: bytes | str | None) -> str:
    return raw.decode() if isinstance(raw, bytes) else (raw or "")


def read_metadata(model: bytes) -> ModelMetadata:
    """The TFLite metadata a model carries; raises InputError when it carries none."""
    fb = _flatbuffer_utils()
    root = fb.schema_fb.Model.GetRootAs(model, 0)
    for i in range(root.MetadataLength()):
        entry = root.Metadata(i)
        if _name(entry.Name()) == METADATA_NAME:
            return decode_metadata(root.Buffers(entry.Buffer()).DataAsNumpy().tobytes())
    raise InputError(
        "the model carries no TFLite metadata", hint="use the .tflite of an `edgefleet bundle android` folder"
    )


def read_associated_files(model: bytes) -> dict[str, bytes]:
    """The files packed after the model (labels), by name; empty when there are none."""
    try:
        with zipfile.ZipFile(io.BytesIO(model)) as archive:
            return {name: archive.read(name) for name in archive.namelist()}
    except zipfile.BadZipFile:
        return {}

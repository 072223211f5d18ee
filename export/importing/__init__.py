"""Bring your own model: ONNX, TFLite or Keras files made elsewhere, into signed packages."""

from __future__ import annotations

from export.importing.build import ImportRequest, import_model
from export.importing.keras import KERAS_EXTRA, convert_keras
from export.importing.spec import ImportSpec, load_spec

__all__ = [
    "KERAS_EXTRA",
    "ImportRequest",
    "ImportSpec",
    "convert_keras",
    "import_model",
    "load_spec",
]

"""Keras models and SavedModels to TFLite, through TensorFlow's own converter (the optional ``keras`` extra)."""

from __future__ import annotations

import importlib
import os
import tempfile
from pathlib import Path
from typing import Any

from edgefleet.errors import InputError, UnsupportedModelError

__all__ = ["KERAS_EXTRA", "convert_keras"]

KERAS_EXTRA = "pip install 'edgefleet[keras]'"


def convert_keras(model: Path, out: Path) -> Path:
    """Write ``model`` (a ``.keras``/``.h5`` file or a SavedModel folder) as an fp32 ``.tflite`` at ``out``.

    Raises InputError when the model is missing or TensorFlow is not installed, UnsupportedModelError when
    the converter refuses the model.
    """
    if not model.exists():
        raise InputError(f"no Keras model or SavedModel folder at {model}", hint="check the path of the model")
    tf = _tensorflow()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            saved_model = model if model.is_dir() else _saved_model(tf, model, Path(tmp) / "saved_model")
            flatbuffer = tf.lite.TFLiteConverter.from_saved_model(str(saved_model)).convert()
    except Exception as err:  # TensorFlow raises many unrelated types; all mean "this model cannot be converted"
        raise UnsupportedModelError(
            f"TensorFlow cannot convert {model} to TFLite: {type(err).__name__}: {str(err)[:400]}",
            hint="a Keras model with custom layers must be saved with them registered; or convert it to TFLite "
            "yourself and run `edgefleet import tflite`",
        ) from err
    out.write_bytes(flatbuffer)
    return out


def _tensorflow() -> Any:
    # TensorFlow logs its start-up to stderr; keep the user's terminal for what edgefleet says
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        return importlib.import_module("tensorflow")
    except ImportError as err:
        raise InputError(
            "importing a Keras model or SavedModel needs TensorFlow, which is not installed here",
            hint=f"{KERAS_EXTRA} (TensorFlow for CPU, about 1.4 GB), or convert the model to TFLite or ONNX "
            "yourself and run `edgefleet import tflite` or `edgefleet import onnx`",
        ) from err


def _saved_model(tf: Any, model: Path, out: Path) -> Path:
    # the SavedModel route is the converter's recommended one and works for Keras 2 and Keras 3 models alike
    tf.keras.models.load_model(str(model)).export(str(out))
    return out

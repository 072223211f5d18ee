"""``edgefleet import``: bring a model made elsewhere (ONNX, TFLite, Keras) into a signed package."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from edgefleet.manifest import ArtifactFormat, Manifest

__all__ = ["app", "keras", "onnx", "tflite"]

app = typer.Typer(
    help="Bring your own model: read its tensors, run it for test vectors, sign it into a package.",
    no_args_is_help=True,
)
_out = Console()

Spec = Annotated[Path, typer.Option(help="YAML with name, task, labels and preprocessing (docs/import.md)")]
Key = Annotated[Path, typer.Option(help="the signing.key to sign with")]
Version = Annotated[str, typer.Option(help="semantic version of this package, e.g. 1.0.0")]
Out = Annotated[Path, typer.Option(help="the .efpkg file to write")]


@app.command()
def onnx(
    model: Annotated[Path, typer.Argument(help="the .onnx model")], spec: Spec, key: Key, version: Version, out: Out
) -> None:
    """Package an ONNX model."""
    _import(model, ArtifactFormat.ONNX, spec, key, version, out)


@app.command()
def tflite(
    model: Annotated[Path, typer.Argument(help="the .tflite model")], spec: Spec, key: Key, version: Version, out: Out
) -> None:
    """Package a TFLite (LiteRT) model."""
    _import(model, ArtifactFormat.TFLITE, spec, key, version, out)


@app.command()
def keras(
    model: Annotated[Path, typer.Argument(help="a .keras or .h5 file, or a SavedModel folder")],
    spec: Spec,
    key: Key,
    version: Version,
    out: Out,
) -> None:
    """Convert a Keras model or SavedModel to TFLite with TensorFlow, then package it (needs the `keras` extra)."""
    from export.importing import convert_keras

    with tempfile.TemporaryDirectory() as tmp:
        converted = convert_keras(model, Path(tmp) / "model.tflite")
        _import(converted, ArtifactFormat.TFLITE, spec, key, version, out)


def _import(model: Path, fmt: ArtifactFormat, spec: Path, key: Path, version: str, out: Path) -> None:
    from export.importing import ImportRequest, import_model

    manifest = import_model(ImportRequest(model, fmt, spec, key, version, out))
    _out.print(_render(manifest, out), markup=False, highlight=False)


def _render(manifest: Manifest, out: Path) -> str:
    artifact = manifest.artifacts[0]
    tensors = ", ".join(f"{t.name} {t.shape}" for t in manifest.inputs)
    vectors = manifest.test_vectors
    count = next(iter(vectors.inputs.values())).shape[0] if vectors else 0
    profile = "with" if manifest.reference_profile else "without"
    return (
        f"wrote {out} ({out.stat().st_size} bytes): {manifest.name} {manifest.version}, "
        f"{artifact.format} {artifact.precision}, input {tensors}, {count} test vectors, {profile} a reference profile"
    )

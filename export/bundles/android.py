"""``edgefleet bundle android``: a LiteRT model with TFLite metadata, its labels, and a Kotlin sample."""

from __future__ import annotations

import tempfile
from pathlib import Path

from edgefleet.manifest import ImagePreprocessing, Precision, SensorPreprocessing
from export.bundles._kotlin import EXECUTORCH_VERSION, LITERT_VERSION, gradle_snippet, kotlin_classifier
from export.bundles._schema import (
    AssociatedFile,
    AssociatedFileType,
    ColourSpace,
    FeatureContent,
    ImageContent,
    ModelMetadata,
    Normalization,
    TensorMetadata,
)
from export.bundles._source import LABELS_FILE, RunSource, load_source
from export.bundles.executorch import check_pte_precision, export_pte
from export.bundles.metadata import embed_metadata, signature_tensor_names
from export.onnx import RUL_OUTPUT_NAME
from export.tflite import export_tflite, quantize_tflite

__all__ = ["build_android_bundle", "describe_run"]


def _input_metadata(source: RunSource) -> TensorMetadata:
    spec = source.run.preprocessing
    if isinstance(spec, SensorPreprocessing):
        channels = ", ".join(f"{c.name} ({c.unit})" if c.unit else c.name for c in spec.channels)
        return TensorMetadata(
            name=source.input_name,
            description=(
                f"one window of {len(spec.channels)} sensor channels x {spec.window_length} samples at "
                f"{spec.sample_rate_hz:g} Hz, channel after channel: {channels}; each channel scaled as "
                "(value - mean) / std"
            ),
            dimension_names=("batch", "channel", "time"),
            content=FeatureContent(),
            normalization=Normalization(tuple(c.mean for c in spec.channels), tuple(c.std for c in spec.channels)),
        )
    image: ImagePreprocessing = spec
    return TensorMetadata(
        name=source.input_name,
        description=(
            f"one RGB image of {image.width}x{image.height} pixels, planar (channel, height, width); "
            "each channel scaled as (pixel - mean) / std, pixels in 0..255"
        ),
        dimension_names=("batch", "channel", "height", "width"),
        content=ImageContent(ColourSpace.RGB, image.width, image.height),
        # TFLite metadata normalizes raw pixels (0..255); the run scales to 0..1 first, so the figures are x255
        normalization=Normalization(tuple(255 * m for m in image.mean), tuple(255 * s for s in image.std)),
    )


def _output_metadata(source: RunSource, name: str) -> TensorMetadata:
    rul = source.run.rul
    if name == RUL_OUTPUT_NAME and rul is not None:
        return TensorMetadata(
            name=name,
            description=f"remaining useful life in {rul.unit}, from 0 to {rul.cap:g}",
            dimension_names=("batch", "value"),
            content=FeatureContent(),
        )
    return TensorMetadata(
        name=name,
        description=f"probability of each of the {len(source.run.labels)} classes, in the order of {LABELS_FILE}",
        dimension_names=("batch", "class"),
        content=FeatureContent(),
        associated_files=(
            AssociatedFile(LABELS_FILE, "class labels, one per line", AssociatedFileType.TENSOR_AXIS_LABELS),
        ),
    )


def describe_run(source: RunSource, output_order: tuple[str, ...]) -> ModelMetadata:
    """The TFLite metadata of the run's model, its outputs described in ``output_order`` (the subgraph's)."""
    run = source.run
    return ModelMetadata(
        name=run.name,
        description=f"{run.kind} classifier trained by edgefleet ({run.architecture}); classes: {', '.join(run.labels)}",
        version=f"held-out accuracy {run.metrics['accuracy']:.3f}" if "accuracy" in run.metrics else "",
        author="edgefleet",
        license="",
        inputs=(_input_metadata(source),),
        outputs=tuple(_output_metadata(source, name) for name in output_order),
    )


def _readme(source: RunSource, model_file: str, pte: str | None) -> str:
    outputs = ", ".join(f"`{n}`" for n in source.output_names)
    lines = [
        f"# {source.run.name}: Android bundle",
        "",
        f"- `{model_file}`: the model for LiteRT, with TFLite metadata (input and output descriptions, "
        f"normalization, and `{LABELS_FILE}` packed inside).",
        f"- `{LABELS_FILE}`: the class labels, one per line, in the order of the `probs` output.",
        "- `Classifier.kt`: loads the model with `org.tensorflow.lite.Interpreter`, prepares inputs as the run did, "
        f"and reads the outputs {outputs} by name.",
        "- `build.gradle.kts.snippet`: the lines your app module needs.",
        "",
        "## Use it",
        "",
        f"1. Copy `{model_file}` and `{LABELS_FILE}` to `app/src/main/assets/`, and `Classifier.kt` to your sources.",
        f"2. Add the lines of `build.gradle.kts.snippet` (LiteRT {LITERT_VERSION} from Google Maven).",
        "3. `Classifier(context).use { it.classify(it.prepare(raw)) }`.",
    ]
    if pte is not None:
        lines += [
            "",
            "## ExecuTorch",
            "",
            f"`{pte}` is the same model for PyTorch's ExecuTorch runtime (XNNPACK delegate), "
            f"`org.pytorch:executorch-android:{EXECUTORCH_VERSION}`: `Module.load(path).forward(EValue.from("
            "Tensor.fromBlob(classifier.prepare(raw), shape)))` returns the outputs in the order "
            f"{outputs}; the input is prepared the same way.",
        ]
    return "\n".join([*lines, ""])


def build_android_bundle(
    run_dir: Path, out: Path, precision: Precision = Precision.FP32, executorch: Precision | None = None
) -> list[Path]:
    """Write the Android bundle of the run at ``run_dir`` into ``out``; returns the files written.

    Raises InputError for a folder that is not a run, ExportError when a conversion fails.
    """
    if executorch is not None:
        check_pte_precision(executorch)
    source = load_source(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    model_file = f"{source.run.name}-{precision.value}.tflite"
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_tflite(
            source.model, source.sample, Path(tmp) / "fp32.tflite", source.input_name, source.output_names
        )
        converted = quantize_tflite(fp32, precision, source.calibration, source.input_name, Path(tmp) / "model.tflite")
        model = converted.read_bytes()
    _, output_order = signature_tensor_names(model)
    labels = source.labels_text.encode()
    written = {
        model_file: embed_metadata(model, describe_run(source, output_order), {LABELS_FILE: labels}),
        LABELS_FILE: labels,
        "Classifier.kt": kotlin_classifier(source, model_file).encode(),
        "build.gradle.kts.snippet": gradle_snippet(executorch is not None).encode(),
    }
    pte = None
    if executorch is not None:
        pte = f"{source.run.name}-xnnpack-{executorch.value}.pte"
        export_pte(source.model, source.sample, executorch, source.calibration, out / pte)
    written["README.md"] = _readme(source, model_file, pte).encode()
    for name, data in written.items():
        (out / name).write_bytes(data)
    return sorted([out / name for name in written] + ([out / pte] if pte else []))

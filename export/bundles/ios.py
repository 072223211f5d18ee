"""``edgefleet bundle ios``: a Core ML classifier (ML Program), its labels, and a Swift sample."""

from __future__ import annotations

import contextlib
import io
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch

from edgefleet.errors import ExportError, InputError
from edgefleet.manifest import Precision
from export.bundles._source import LABELS_FILE, RunSource, load_source
from export.bundles._swift import LABEL_OUTPUT, swift_classifier
from export.bundles.executorch import check_pte_precision, export_pte

__all__ = ["build_ios_bundle", "convert_coreml"]

_SCORES: Final = "scores"  # the softmax inside the program, before the classifier turns it into a dictionary


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Keep coremltools' progress bars and its notes about the macOS-only runtime out of the user's terminal."""
    with (
        warnings.catch_warnings(),
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
    ):
        warnings.simplefilter("ignore")
        yield


def _coremltools() -> Any:
    try:
        with _quiet():
            import coremltools
    except ImportError as err:
        raise InputError(
            f"coremltools cannot be imported ({err}), so no Core ML model can be made",
            hint="pip install 'edgefleet[mobile]'",
        ) from err
    return coremltools


def convert_coreml(source: RunSource, out: Path) -> Path:
    """Write the run's model as a Core ML classifier ``.mlpackage`` (ML Program, iOS 16+).

    Inputs and outputs keep the names of the other artifacts: the input, the probabilities as a dictionary
    by label, the RUL; ``label`` adds the predicted class. Raises InputError when coremltools is missing,
    ExportError when the conversion fails.
    """
    ct = _coremltools()
    probs_name, *others = source.output_names
    try:
        with _quiet(), torch.no_grad():
            program = torch.export.export(source.model, (source.sample,)).run_decompositions({})
            shape = tuple(source.sample.shape)
            mil = ct.convert(
                program,
                inputs=[ct.TensorType(name=source.input_name, shape=shape, dtype=np.float32)],
                convert_to="milinternal",
            )
            # named in the program, because `outputs=` and a classifier config together break coremltools 9.0
            for var, name in zip(mil.functions["main"].outputs, (_SCORES, *others), strict=True):
                var.name = name
            config = ct.ClassifierConfig(
                list(source.run.labels), predicted_feature_name=LABEL_OUTPUT, predicted_probabilities_output=_SCORES
            )
            model = ct.convert(
                mil, classifier_config=config, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16
            )
            spec = model.get_spec()
            ct.utils.rename_feature(spec, f"{LABEL_OUTPUT}_probs", probs_name)  # the classifier names it so
            model = ct.models.MLModel(spec, weights_dir=model.weights_dir, skip_model_load=True)
    except Exception as err:  # the converter raises many unrelated types; all mean the same to the user
        raise ExportError(
            f"Core ML conversion failed: {type(err).__name__}: {str(err)[:400]}",
            hint="the model uses an operator Core ML cannot take; bundle for Android instead",
        ) from err
    model.author = "edgefleet"
    model.short_description = (
        f"{source.run.name}: {source.run.kind} classifier; classes: {', '.join(source.run.labels)}"
    )
    model.input_description[source.input_name] = "the prepared input, as Classifier.prepare makes it"
    model.output_description[LABEL_OUTPUT] = "the most probable class"
    model.output_description[probs_name] = "probability of each class, by label"
    if source.run.rul is not None:
        model.output_description[others[0]] = f"remaining useful life in {source.run.rul.unit}"
    if out.exists():
        shutil.rmtree(out)  # an .mlpackage is a folder: saving over an older one would mix their files
    model.save(str(out))
    return out


def _readme(source: RunSource, package: str, pte: str | None) -> str:
    lines = [
        f"# {source.run.name}: iOS bundle",
        "",
        f"- `{package}`: the model for Core ML (ML Program, iOS 16 or later), a classifier over "
        f"`{LABELS_FILE}`: input `{source.input_name}`, outputs `{LABEL_OUTPUT}` (the class), "
        + ", ".join(f"`{n}`" for n in source.output_names)
        + ".",
        f"- `{LABELS_FILE}`: the class labels, one per line.",
        "- `Classifier.swift`: loads the compiled model, prepares inputs as the run did, reads the outputs by name.",
        "",
        "## Use it",
        "",
        f"1. Drag `{package}` and `Classifier.swift` into your Xcode target; Xcode compiles the model.",
        "2. `let result = try Classifier().classify(Classifier.prepare(raw))`.",
        "",
        "Core ML computes in float16 by default on the Neural Engine and GPU; results differ from the "
        "float32 model in the last digits.",
    ]
    if pte is not None:
        lines += [
            "",
            "## ExecuTorch",
            "",
            f"`{pte}` is the same model for PyTorch's ExecuTorch runtime (XNNPACK delegate): add the ExecuTorch "
            "Swift package of the same release as the exporter (1.5), load it with `Module(filePath:)` and call "
            "`forward` with the input `Classifier.prepare` makes.",
        ]
    return "\n".join([*lines, ""])


def build_ios_bundle(run_dir: Path, out: Path, executorch: Precision | None = None) -> list[Path]:
    """Write the iOS bundle of the run at ``run_dir`` into ``out``; returns the files written.

    Raises InputError for a folder that is not a run or when coremltools is missing, ExportError when a
    conversion fails.
    """
    if executorch is not None:
        check_pte_precision(executorch)
    source = load_source(run_dir)
    _coremltools()  # refuse before writing anything when Core ML cannot be made
    out.mkdir(parents=True, exist_ok=True)
    package = f"{source.run.name}.mlpackage"
    convert_coreml(source, out / package)
    pte = None
    if executorch is not None:
        pte = f"{source.run.name}-xnnpack-{executorch.value}.pte"
        export_pte(source.model, source.sample, executorch, source.calibration, out / pte)
    texts = {
        LABELS_FILE: source.labels_text,
        "Classifier.swift": swift_classifier(source),
        "README.md": _readme(source, package, pte),
    }
    for name, text in texts.items():
        (out / name).write_text(text)
    return sorted([out / package, *(out / name for name in texts), *([out / pte] if pte else [])])

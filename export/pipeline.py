"""Export a training run: ONNX artifacts per precision, their figures against PyTorch, and test vectors."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import torch

from edgefleet.errors import InputError
from edgefleet.manifest import (
    ArtifactFormat,
    DType,
    ExpectedOutputs,
    Precision,
    TensorSpec,
    TestVectors,
)
from edgefleet.package import file_sha256
from edgefleet.preprocess import prepare_inputs
from edgefleet.tensors import encode_tensor
from export.evaluate import measure_latency_ms, run_onnx
from export.onnx import INPUT_NAME, OUTPUT_NAME, RUL_OUTPUT_NAME, export_onnx
from export.quantize import convert_onnx_fp16, quantize_onnx_int8
from export.report import REPORT_FILE, ArtifactReport, ExportReport
from train.metrics import classification_metrics
from train.models import DeviceOutputs, build_model, split_outputs
from train.run import RunInfo, input_channels, load_run

__all__ = ["PRECISIONS", "ExportOptions", "export_run"]

# what each format can be exported at; anything else is refused before work starts
PRECISIONS: Final[Mapping[ArtifactFormat, frozenset[Precision]]] = {
    ArtifactFormat.ONNX: frozenset({Precision.FP32, Precision.FP16, Precision.INT8}),
}
# the largest difference from the PyTorch outputs (probabilities) the on-device smoke test accepts
SMOKE_ATOL: Final = {Precision.FP32: 1e-4, Precision.FP16: 5e-3, Precision.INT8: 5e-2}
_RUNTIME: Final = {ArtifactFormat.ONNX: "onnxruntime>=1.17"}
_CALIBRATION_WINDOWS: Final = 256
_LAYOUT: Final = {"pdm": "NCW", "vision": "NCHW"}


@dataclass(frozen=True, slots=True)
class ExportOptions:
    formats: tuple[ArtifactFormat, ...] = (ArtifactFormat.ONNX,)
    precisions: tuple[Precision, ...] = (Precision.FP32, Precision.INT8)
    test_vectors: int = 4
    latency_runs: int = 100


def export_run(
    run_dir: Path, out_dir: Path, options: ExportOptions = ExportOptions(), on_step: Callable[[str], None] | None = None
) -> ExportReport:
    """Write the artifacts and ``export.json`` of a run into ``out_dir``; raises InputError for bad options."""
    _check_options(options)
    step = on_step or (lambda _: None)
    run = load_run(run_dir)
    model, data = _load(run, run_dir)
    calibration = prepare_inputs(data["train_inputs"][:_CALIBRATION_WINDOWS], run.preprocessing)
    held_x = prepare_inputs(data["held_out_inputs"], run.preprocessing)
    held_y = data["held_out_labels"]
    with torch.no_grad():
        probs, _ = split_outputs(model(torch.from_numpy(held_x)))
    reference = probs.numpy()
    output_names = (OUTPUT_NAME,) if run.rul is None else (OUTPUT_NAME, RUL_OUTPUT_NAME)

    out_dir.mkdir(parents=True, exist_ok=True)
    reports: list[ArtifactReport] = []
    expected: dict[str, ExpectedOutputs] = {}
    vectors = held_x[: options.test_vectors]
    with tempfile.TemporaryDirectory() as tmp:
        step("exporting ONNX fp32")
        base = export_onnx(model, torch.from_numpy(held_x[:1]), Path(tmp) / "base.onnx", output_names)
        for precision in options.precisions:
            step(f"making ONNX {precision}")
            path = out_dir / f"{run.name}-{precision}.onnx"
            _make(precision, base, calibration, path)
            step(f"measuring ONNX {precision}")
            reports.append(_measure(path, precision, held_x, held_y, reference, len(run.labels), options.latency_runs))
            expected[path.name] = ExpectedOutputs(
                atol=SMOKE_ATOL[precision],
                outputs={name: encode_tensor(values) for name, values in run_onnx(path, vectors).items()},
            )
    report = ExportReport(
        name=run.name,
        labels=run.labels,
        inputs=[
            TensorSpec(name=INPUT_NAME, shape=[None, *held_x.shape[1:]], dtype=DType.FLOAT32, layout=_LAYOUT[run.kind])
        ],
        outputs=[TensorSpec(name=OUTPUT_NAME, shape=[None, len(run.labels)], dtype=DType.FLOAT32)]
        + ([] if run.rul is None else [TensorSpec(name=RUL_OUTPUT_NAME, shape=[None, 1], dtype=DType.FLOAT32)]),
        preprocessing=run.preprocessing,
        reference_metrics=run.metrics,
        reference_profile=run.reference_profile,
        test_vectors=TestVectors(inputs={INPUT_NAME: encode_tensor(vectors)}, expected=expected),
        artifacts=reports,
    )
    (out_dir / REPORT_FILE).write_text(report.model_dump_json(indent=2))
    return report


def _check_options(options: ExportOptions) -> None:
    for fmt in options.formats:
        allowed = PRECISIONS.get(fmt)
        if allowed is None:
            raise InputError(
                f"export to {fmt} is not available in this version",
                hint=f"choose from: {', '.join(PRECISIONS)}",
            )
        refused = [p for p in options.precisions if p not in allowed]
        if refused:
            raise InputError(
                f"{fmt} cannot be exported at {', '.join(refused)}",
                hint=f"{fmt} takes: {', '.join(sorted(allowed))}",
            )
    if not options.precisions:
        raise InputError("no precision asked for", hint="pass --precisions, e.g. fp32,int8")


def _load(run: RunInfo, run_dir: Path) -> tuple[torch.nn.Module, dict[str, npt.NDArray[np.generic]]]:
    model = build_model(run.architecture, input_channels(run), len(run.labels), run.model_width, run.rul is not None)
    try:
        model.load_state_dict(torch.load(run_dir / run.checkpoint, weights_only=True))
        with np.load(run_dir / run.calibration) as npz:
            data = {k: npz[k] for k in npz.files}
    except (OSError, RuntimeError, KeyError, ValueError) as err:
        raise InputError(f"the run in {run_dir} is incomplete: {err}", hint="train again into a new folder") from err
    wrapped = DeviceOutputs(model, None if run.rul is None else run.rul.cap)
    wrapped.eval()
    return wrapped, data


def _make(precision: Precision, base: Path, calibration: npt.NDArray[np.float32], out: Path) -> None:
    if precision is Precision.FP32:
        shutil.copyfile(base, out)
    elif precision is Precision.FP16:
        convert_onnx_fp16(base, out)
    else:
        quantize_onnx_int8(base, calibration, INPUT_NAME, out)


def _measure(
    path: Path,
    precision: Precision,
    held_x: npt.NDArray[np.float32],
    held_y: npt.NDArray[np.generic],
    reference: npt.NDArray[np.float32],
    classes: int,
    latency_runs: int,
) -> ArtifactReport:
    probs = run_onnx(path, held_x)[OUTPUT_NAME]
    metrics = classification_metrics(np.asarray(held_y, dtype=np.int64), probs.argmax(1), classes)
    p50, p95 = measure_latency_ms(path, held_x[:1], latency_runs)
    _, size = file_sha256(path)
    return ArtifactReport(
        path=path.name,
        format=ArtifactFormat.ONNX,
        precision=precision,
        runtime=_RUNTIME[ArtifactFormat.ONNX],
        size_bytes=size,
        latency_p50_ms=p50,
        latency_p95_ms=p95,
        max_abs_diff=float(np.abs(probs - reference).max()),
        top1_agreement=float((probs.argmax(1) == reference.argmax(1)).mean()),
        accuracy=metrics["accuracy"],
        macro_f1=metrics["macro_f1"],
    )

"""Export a training run: artifacts per format and precision, measured on the device runtimes and gated.

Every artifact runs on the runtime a device would use (the agent's own backends), single-threaded, on
the run's held-out inputs: its outputs are compared with PyTorch's (parity), its accuracy with the
float model's (accuracy drop), and its latency is measured; test vectors for the on-device smoke test
come from the same runs.
"""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import torch

from devices.profiles import PROFILES
from edgefleet.errors import InputError, UnsupportedModelError
from edgefleet.manifest import (
    ArtifactFormat,
    DType,
    ExpectedOutputs,
    LatencyEstimate,
    Precision,
    TensorSpec,
    TestVectors,
)
from edgefleet.package import file_sha256
from edgefleet.preprocess import prepare_inputs
from edgefleet.tensors import encode_tensor
from export.estimates import RUNTIMES, calibration_ms, estimate_latencies
from export.gates import SMOKE_ATOL, GateSettings, check_gates
from export.measure import measure_latency_ms, run_artifact
from export.onnx import INPUT_NAME, OUTPUT_NAME, RUL_OUTPUT_NAME, export_onnx, shorten_names
from export.quantize import convert_onnx_fp16, quantize_onnx_int8
from export.report import REPORT_FILE, ArtifactReport, ExportReport
from export.report_html import HTML_FILE, write_html_report
from export.tflite import export_tflite, quantize_tflite
from train.metrics import classification_metrics
from train.models import DeviceOutputs, build_model, split_outputs
from train.run import RunInfo, input_channels, load_run

__all__ = ["PRECISIONS", "ExportOptions", "export_run"]

# what each format can be exported at; anything else is refused before work starts
PRECISIONS: Final[Mapping[ArtifactFormat, frozenset[Precision]]] = {
    ArtifactFormat.ONNX: frozenset({Precision.FP32, Precision.FP16, Precision.INT8}),
    ArtifactFormat.TFLITE: frozenset({Precision.FP32, Precision.FP16, Precision.INT8}),
}
_RUNTIME: Final = {ArtifactFormat.ONNX: "onnxruntime>=1.17", ArtifactFormat.TFLITE: "ai-edge-litert>=2.3"}
_SUFFIX: Final = {ArtifactFormat.ONNX: ".onnx", ArtifactFormat.TFLITE: ".tflite"}
_LAYOUT: Final = {"pdm": "NCW", "vision": "NCHW"}


@dataclass(frozen=True, slots=True)
class ExportOptions:
    formats: tuple[ArtifactFormat, ...] = (ArtifactFormat.ONNX, ArtifactFormat.TFLITE)
    precisions: tuple[Precision, ...] = (Precision.FP32, Precision.INT8)
    gates: GateSettings = field(default_factory=GateSettings)
    test_vectors: int = 4
    latency_runs: int = 100
    calibration_samples: int = 512
    seed: int = 0


@dataclass(frozen=True, slots=True)
class _Data:
    calibration: npt.NDArray[np.float32]
    held_x: npt.NDArray[np.float32]
    held_y: npt.NDArray[np.int64]
    held_rul: npt.NDArray[np.float32] | None
    reference_probs: npt.NDArray[np.float32]


def export_run(
    run_dir: Path, out_dir: Path, options: ExportOptions = ExportOptions(), on_step: Callable[[str], None] | None = None
) -> ExportReport:
    """Write the artifacts, ``export.json`` and ``export.html`` of a run into ``out_dir``.

    Gates are evaluated, not enforced: the caller decides what a failed gate means (the command line
    exits 1). Raises InputError for bad options or a broken run, UnsupportedModelError when a format
    cannot take the model.
    """
    _check_options(options)
    step = on_step or (lambda _: None)
    run = load_run(run_dir)
    model, data = _load(run, run_dir, options)
    float_accuracy = float((data.reference_probs.argmax(1) == data.held_y).mean())
    output_names = (OUTPUT_NAME,) if run.rul is None else (OUTPUT_NAME, RUL_OUTPUT_NAME)
    vectors = data.held_x[: options.test_vectors]

    out_dir.mkdir(parents=True, exist_ok=True)
    reports: list[ArtifactReport] = []
    expected: dict[str, ExpectedOutputs] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in options.formats:
            step(f"exporting {fmt} fp32")
            base = _export_base(fmt, model, data.held_x[:1], Path(tmp) / f"base{_SUFFIX[fmt]}", output_names)
            for precision in options.precisions:
                path = out_dir / f"{run.name}-{precision}{_SUFFIX[fmt]}"
                step(f"making {fmt} {precision}")
                _make(fmt, precision, base, data.calibration, path)
                step(f"measuring {fmt} {precision}")
                reports.append(_measure(fmt, path, precision, data, float_accuracy, len(run.labels), options))
                expected[path.name] = ExpectedOutputs(
                    atol=SMOKE_ATOL[precision],
                    outputs={name: encode_tensor(v) for name, v in run_artifact(fmt, path, vectors).items()},
                )
    step("calibrating latency estimates")
    here = calibration_ms()
    estimates: list[LatencyEstimate] = []
    for a in reports:
        estimates += estimate_latencies(a.path, a.format, a.latency_p50_ms, a.latency_p95_ms, here, PROFILES.values())
    report = ExportReport(
        name=run.name,
        labels=run.labels,
        inputs=[
            TensorSpec(
                name=INPUT_NAME, shape=[None, *data.held_x.shape[1:]], dtype=DType.FLOAT32, layout=_LAYOUT[run.kind]
            )
        ],
        outputs=[TensorSpec(name=OUTPUT_NAME, shape=[None, len(run.labels)], dtype=DType.FLOAT32)]
        + ([] if run.rul is None else [TensorSpec(name=RUL_OUTPUT_NAME, shape=[None, 1], dtype=DType.FLOAT32)]),
        preprocessing=run.preprocessing,
        reference_metrics=run.metrics,
        float_accuracy=float_accuracy,
        reference_profile=run.reference_profile,
        test_vectors=TestVectors(inputs={INPUT_NAME: encode_tensor(vectors)}, expected=expected),
        artifacts=reports,
        calibration_ms=here,
        compatible_profiles=sorted(
            p.id for p in PROFILES.values() if any(RUNTIMES[a.format] & set(p.runtimes) for a in reports)
        ),
        latency_estimates=estimates,
    )
    (out_dir / REPORT_FILE).write_text(report.model_dump_json(indent=2))
    write_html_report(report, out_dir / HTML_FILE)
    return report


def _check_options(options: ExportOptions) -> None:
    if not options.formats:
        raise InputError("no format asked for", hint="pass --formats, e.g. onnx,tflite")
    if not options.precisions:
        raise InputError("no precision asked for", hint="pass --precisions, e.g. fp32,int8")
    for fmt in options.formats:
        allowed = PRECISIONS.get(fmt)
        if allowed is None:
            raise InputError(
                f"export to {fmt} is not available in this version", hint=f"choose from: {', '.join(PRECISIONS)}"
            )
        refused = [p for p in options.precisions if p not in allowed]
        if refused:
            raise InputError(
                f"{fmt} cannot be exported at {', '.join(refused)}", hint=f"{fmt} takes: {', '.join(sorted(allowed))}"
            )


def _load(run: RunInfo, run_dir: Path, options: ExportOptions) -> tuple[torch.nn.Module, _Data]:
    model = build_model(run.architecture, input_channels(run), len(run.labels), run.model_width, run.rul is not None)
    try:
        model.load_state_dict(torch.load(run_dir / run.checkpoint, weights_only=True))
        with np.load(run_dir / run.calibration) as npz:
            arrays = {k: npz[k] for k in npz.files}
        train_inputs, held_inputs, held_y = arrays["train_inputs"], arrays["held_out_inputs"], arrays["held_out_labels"]
    except (OSError, RuntimeError, KeyError, ValueError, EOFError, pickle.UnpicklingError) as err:
        raise InputError(f"the run in {run_dir} is incomplete: {err}", hint="train again into a new folder") from err
    if len(train_inputs) == 0:
        raise InputError(
            f"the run in {run_dir} holds no training inputs to calibrate int8 on", hint="train on more data"
        )
    if len(held_inputs) == 0:
        raise InputError(f"the run in {run_dir} holds no held-out inputs to measure on", hint="train on more data")
    wrapped = DeviceOutputs(model, None if run.rul is None else run.rul.cap)
    wrapped.eval()
    # a random sample across every recording and class: the runs store windows grouped by class, so the
    # first ones alone would calibrate int8 ranges on one class
    rng = np.random.default_rng(options.seed)
    pick = np.sort(rng.permutation(len(train_inputs))[: options.calibration_samples])
    held_x = prepare_inputs(held_inputs, run.preprocessing)
    with torch.no_grad():
        probs, _ = split_outputs(wrapped(torch.from_numpy(held_x)))
    data = _Data(
        calibration=prepare_inputs(train_inputs[pick], run.preprocessing),
        held_x=held_x,
        held_y=np.asarray(held_y, dtype=np.int64),
        held_rul=arrays.get("held_out_rul"),
        reference_probs=probs.numpy(),
    )
    return wrapped, data


def _export_base(
    fmt: ArtifactFormat,
    model: torch.nn.Module,
    sample: npt.NDArray[np.float32],
    out: Path,
    output_names: tuple[str, ...],
) -> Path:
    if fmt is ArtifactFormat.ONNX:
        return export_onnx(model, torch.from_numpy(sample), out, output_names)
    if fmt is ArtifactFormat.TFLITE:
        return export_tflite(model, torch.from_numpy(sample), out, INPUT_NAME, output_names)
    raise UnsupportedModelError(f"no exporter for {fmt}", hint=f"choose from: {', '.join(PRECISIONS)}")


def _make(
    fmt: ArtifactFormat, precision: Precision, base: Path, calibration: npt.NDArray[np.float32], out: Path
) -> None:
    if fmt is ArtifactFormat.TFLITE:
        quantize_tflite(base, precision, calibration, INPUT_NAME, out)
    elif precision is Precision.FP32:
        out.write_bytes(base.read_bytes())
    elif precision is Precision.FP16:
        convert_onnx_fp16(base, out)
    else:
        quantize_onnx_int8(base, calibration, INPUT_NAME, out)
    if fmt is ArtifactFormat.ONNX:
        shorten_names(out)


def _measure(
    fmt: ArtifactFormat,
    path: Path,
    precision: Precision,
    data: _Data,
    float_accuracy: float,
    classes: int,
    options: ExportOptions,
) -> ArtifactReport:
    outputs = run_artifact(fmt, path, data.held_x)
    probs = outputs[OUTPUT_NAME]
    metrics = classification_metrics(data.held_y, probs.argmax(1), classes)
    p50, p95 = measure_latency_ms(fmt, path, data.held_x[:1], options.latency_runs)
    _, size = file_sha256(path)
    max_abs_diff = float(np.abs(probs - data.reference_probs).max())
    agreement = float((probs.argmax(1) == data.reference_probs.argmax(1)).mean())
    drop = float_accuracy - metrics["accuracy"]
    rul_rmse = None
    if data.held_rul is not None and RUL_OUTPUT_NAME in outputs:
        rul_rmse = float(np.sqrt(np.mean((outputs[RUL_OUTPUT_NAME].ravel() - data.held_rul) ** 2)))
    return ArtifactReport(
        path=path.name,
        format=fmt,
        precision=precision,
        runtime=_RUNTIME[fmt],
        size_bytes=size,
        latency_p50_ms=p50,
        latency_p95_ms=p95,
        max_abs_diff=max_abs_diff,
        top1_agreement=agreement,
        accuracy=metrics["accuracy"],
        macro_f1=metrics["macro_f1"],
        accuracy_drop=drop,
        rul_rmse=rul_rmse,
        gates=check_gates(precision, max_abs_diff, agreement, drop, options.gates),
    )

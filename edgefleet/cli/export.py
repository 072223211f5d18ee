"""``edgefleet export``: export a training run to device artifacts, measured and gated."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from edgefleet.errors import GateError, InputError
from edgefleet.manifest import ArtifactFormat, Precision

if TYPE_CHECKING:
    from export.report import ExportReport

__all__ = ["export"]

E = TypeVar("E", ArtifactFormat, Precision)

_out = Console()


def _parse_list(text: str, enum: type[E], option: str) -> tuple[E, ...]:
    try:
        return tuple(enum(item.strip()) for item in text.split(",") if item.strip())
    except ValueError as err:
        raise InputError(
            f"{option} {text!r} names an unknown value", hint=f"choose from: {', '.join(e.value for e in enum)}"
        ) from err


def _parse_limits(text: str, option: str) -> dict[Precision, float]:
    """``int8=0.3,fp16=0.01`` → {INT8: 0.3, FP16: 0.01}."""
    limits: dict[Precision, float] = {}
    for item in (i.strip() for i in text.split(",") if i.strip()):
        name, _, value = item.partition("=")
        try:
            limits[Precision(name.strip())] = float(value)
        except ValueError as err:
            raise InputError(
                f"{option} {item!r} is not precision=number", hint=f"e.g. {option} int8=0.3,fp16=0.01"
            ) from err
    return limits


def export(
    run: Annotated[Path, typer.Argument(help="a run folder written by `edgefleet train`")],
    out: Annotated[Path, typer.Option(help="the folder for the artifacts, export.json and export.html")],
    formats: Annotated[str, typer.Option(help="comma-separated: onnx, tflite")] = "onnx,tflite",
    precisions: Annotated[str, typer.Option(help="comma-separated: fp32, fp16, int8")] = "fp32,int8",
    max_accuracy_drop: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="gate: largest accuracy drop from the float model (0.01 = 1 point)")
    ] = 0.01,
    max_abs_diff: Annotated[
        str, typer.Option(help="gate: largest probability difference from PyTorch, per precision (e.g. int8=0.3)")
    ] = "",
    min_agreement: Annotated[
        str, typer.Option(help="gate: smallest top-1 agreement with PyTorch, per precision (e.g. int8=0.95)")
    ] = "",
) -> None:
    """Export a trained run to ONNX and TFLite at the asked precisions; exit 1 when an artifact misses a gate."""
    from export import ExportOptions, export_run
    from export.gates import GateSettings

    # the ONNX exporter logs missing optional torchvision ops at WARNING; they do not concern these models
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    defaults = GateSettings()
    gates = GateSettings(
        max_abs_diff={**defaults.max_abs_diff, **_parse_limits(max_abs_diff, "--max-abs-diff")},
        min_agreement={**defaults.min_agreement, **_parse_limits(min_agreement, "--min-agreement")},
        max_accuracy_drop=max_accuracy_drop,
    )
    options = ExportOptions(
        formats=_parse_list(formats, ArtifactFormat, "--formats"),
        precisions=_parse_list(precisions, Precision, "--precisions"),
        gates=gates,
    )
    err = Console(stderr=True)
    with err.status("exporting") as status:
        report = export_run(run, out, options, on_step=lambda step: status.update(step))
    _out.print(_table(report, out))
    _out.print(f"report: {out / 'export.json'} and {out / 'export.html'}")
    if report.failed:
        missed = "; ".join(
            f"{a.path}: {', '.join(g.describe() for g in a.gates if not g.passed)}" for a in report.failed
        )
        raise GateError(
            f"{len(report.failed)} artifact(s) missed a gate: {missed}",
            hint="look at export.html; loosen a gate (--max-accuracy-drop, --max-abs-diff) only if you accept the loss",
        )


def _table(report: ExportReport, out: Path) -> Table:
    table = Table(title=f"{report.name}: exported to {out} (float model accuracy {report.float_accuracy:.4f})")
    columns = ("artifact", "size", "p50 ms", "p95 ms", "accuracy", "drop", "max |Δ|", "top-1 agree", "gates")
    for column in columns:
        table.add_column(column, justify="left" if column == "artifact" else "right", no_wrap=column == "artifact")
    for a in report.artifacts:
        verdict = "[green]passed[/]" if a.passed else "[bold red]FAILED[/]"
        table.add_row(
            a.path,
            f"{a.size_bytes / 1024:.1f} KiB",
            f"{a.latency_p50_ms:.3f}",
            f"{a.latency_p95_ms:.3f}",
            f"{a.accuracy:.4f}",
            f"{a.accuracy_drop:+.4f}",
            f"{a.max_abs_diff:.2e}",
            f"{a.top1_agreement:.3f}",
            verdict,
        )
    return table

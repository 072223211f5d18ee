"""``edgefleet export``: export a training run to device artifacts, with their figures."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from edgefleet.errors import InputError
from edgefleet.manifest import ArtifactFormat, Precision

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


def export(
    run: Annotated[Path, typer.Argument(help="a run folder written by `edgefleet train`")],
    out: Annotated[Path, typer.Option(help="the folder for the artifacts and export.json")],
    formats: Annotated[str, typer.Option(help="comma-separated: onnx")] = "onnx",
    precisions: Annotated[str, typer.Option(help="comma-separated: fp32, fp16, int8")] = "fp32,int8",
) -> None:
    """Export a trained run to ONNX at the asked precisions, measuring each artifact against PyTorch."""
    from export import ExportOptions, export_run

    # the ONNX exporter logs missing optional torchvision ops at WARNING; they do not concern these models
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    options = ExportOptions(
        formats=_parse_list(formats, ArtifactFormat, "--formats"),
        precisions=_parse_list(precisions, Precision, "--precisions"),
    )
    err = Console(stderr=True)
    with err.status("exporting") as status:
        report = export_run(run, out, options, on_step=lambda step: status.update(step))
    table = Table(title=f"{report.name}: exported to {out}")
    for column in ("artifact", "size", "p50 ms", "p95 ms", "max |Δ| vs torch", "top-1 agree", "accuracy"):
        table.add_column(column, justify="left" if column == "artifact" else "right", no_wrap=column == "artifact")
    for a in report.artifacts:
        table.add_row(
            a.path,
            f"{a.size_bytes / 1024:.1f} KiB",
            f"{a.latency_p50_ms:.3f}",
            f"{a.latency_p95_ms:.3f}",
            f"{a.max_abs_diff:.2e}",
            f"{a.top1_agreement:.3f}",
            f"{a.accuracy:.3f}",
        )
    _out.print(table)

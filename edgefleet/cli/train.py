"""``edgefleet train``: train a model and write its run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

__all__ = ["app", "pdm"]

app = typer.Typer(help="Train models for edge devices.", no_args_is_help=True)
_out = Console()


@app.command()
def pdm(
    out: Annotated[Path, typer.Option(help="the run folder to write")],
    epochs: Annotated[int, typer.Option(min=1, max=1000, help="passes over the training data (at most)")] = 20,
    seed: Annotated[int, typer.Option(help="the same seed gives the same data and model")] = 0,
    data: Annotated[
        Path | None,
        typer.Option(help="your recordings: a .csv or .parquet file, or a CWRU folder (<class>/<record>.mat)"),
    ] = None,
    label_column: Annotated[str, typer.Option(help="CSV/Parquet: the column holding each row's class")] = "label",
    window: Annotated[int, typer.Option(min=16, help="samples per window (with --data)")] = 512,
    hop: Annotated[int, typer.Option(min=1, help="samples between window starts (with --data)")] = 256,
    sample_rate: Annotated[
        float | None, typer.Option(help="Hz; default: from the time column, or 12 kHz for CWRU")
    ] = None,
) -> None:
    """Predictive maintenance: a sensor-window fault classifier, on physics-grounded synthetic data or yours."""
    from train import PdmConfig, train_pdm
    from train.datasets import SensorDataset, load_cwru, load_table
    from train.fit import EpochReport

    dataset: SensorDataset | None = None
    if data is not None and data.is_dir():
        dataset = load_cwru(data, window_length=window, hop=hop, sample_rate_hz=sample_rate or 12_000.0)
    elif data is not None:
        dataset = load_table(data, label_column=label_column, window_length=window, hop=hop, sample_rate_hz=sample_rate)

    with Progress(
        TextColumn("[bold]training[/]"),
        BarColumn(),
        TextColumn("epoch {task.completed}/{task.total}"),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    ) as progress:
        task = progress.add_task("train", total=epochs, status="generating data")

        def on_epoch(report: EpochReport) -> None:
            status = f"loss {report.loss:.3f}  validation loss {report.validation_loss:.3f}  accuracy {report.validation_accuracy:.3f}"
            progress.update(task, completed=report.epoch, status=status)

        run = train_pdm(PdmConfig(epochs=epochs, seed=seed), out, on_epoch, dataset)
    figures = ", ".join(f"{k} {v:.3f}" for k, v in run.metrics.items())
    _out.print(f"wrote run [bold]{out}[/] ({run.name}; held-out {figures}; see metrics.json, confusion_matrix.png)")

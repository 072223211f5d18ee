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
    epochs: Annotated[int, typer.Option(min=1, max=1000, help="passes over the training data")] = 12,
    seed: Annotated[int, typer.Option(help="the same seed gives the same data and model")] = 0,
) -> None:
    """Predictive maintenance: a sensor-window fault classifier, on physics-grounded synthetic data."""
    from train import PdmConfig, train_pdm
    from train.pdm import EpochReport

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

        run = train_pdm(PdmConfig(epochs=epochs, seed=seed), out, on_epoch)
    figures = ", ".join(f"{k} {v:.3f}" for k, v in run.metrics.items())
    _out.print(f"wrote run [bold]{out}[/] ({run.name}; held-out {figures})")

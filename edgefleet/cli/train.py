"""``edgefleet train``: train a model and write its run folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

if TYPE_CHECKING:
    from train.fit import EpochReport
    from train.run import RunInfo

__all__ = ["app", "pdm", "vision"]

app = typer.Typer(help="Train models for edge devices.", no_args_is_help=True)
_out = Console()


def _with_progress(epochs: int, train: Callable[[Callable[[EpochReport], None]], RunInfo]) -> RunInfo:
    """Run ``train`` with a progress bar of epochs on stderr (early stopping may end it sooner)."""
    with Progress(
        TextColumn("[bold]training[/]"),
        BarColumn(),
        TextColumn("epoch {task.completed}/{task.total}"),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    ) as progress:
        task = progress.add_task("train", total=epochs, status="preparing data")

        def on_epoch(report: EpochReport) -> None:
            status = (
                f"loss {report.loss:.3f}  validation loss {report.validation_loss:.3f}  "
                f"accuracy {report.validation_accuracy:.3f}"
            )
            progress.update(task, completed=report.epoch, status=status)

        return train(on_epoch)


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

    dataset: SensorDataset | None = None
    if data is not None and data.is_dir():
        dataset = load_cwru(data, window_length=window, hop=hop, sample_rate_hz=sample_rate or 12_000.0)
    elif data is not None:
        dataset = load_table(data, label_column=label_column, window_length=window, hop=hop, sample_rate_hz=sample_rate)

    run = _with_progress(
        epochs, lambda on_epoch: train_pdm(PdmConfig(epochs=epochs, seed=seed), out, on_epoch, dataset)
    )
    figures = ", ".join(f"{k} {v:.3f}" for k, v in run.metrics.items())
    _out.print(f"wrote run [bold]{out}[/] ({run.name}; held-out {figures}; see metrics.json, confusion_matrix.png)")


@app.command()
def vision(
    out: Annotated[Path, typer.Option(help="the run folder to write")],
    epochs: Annotated[int, typer.Option(min=1, max=1000, help="passes over the training data (at most)")] = 40,
    seed: Annotated[int, typer.Option(help="the same seed gives the same data and model")] = 0,
    data: Annotated[
        Path | None, typer.Option(help="your images: a folder per class, or an MVTec AD category folder")
    ] = None,
    size: Annotated[int, typer.Option(min=16, max=512, help="input size in pixels (square)")] = 64,
    width: Annotated[float, typer.Option(min=0.25, max=2.0, help="width multiplier of the network")] = 0.5,
) -> None:
    """Visual inspection: a defect classifier for camera images, on synthetic surfaces or your images."""
    from train import VisionConfig, train_vision
    from train.datasets import ImageDataset, load_image_folder, load_mvtec

    dataset: ImageDataset | None = None
    if data is not None and (data / "train" / "good").is_dir():
        dataset = load_mvtec(data, size=size)
    elif data is not None:
        dataset = load_image_folder(data, size=size)
    config = VisionConfig(epochs=epochs, seed=seed, size=size, width=width)
    run = _with_progress(epochs, lambda on_epoch: train_vision(config, out, on_epoch, dataset))
    figures = ", ".join(f"{k} {v:.3f}" for k, v in run.metrics.items())
    _out.print(f"wrote run [bold]{out}[/] ({run.name}; held-out {figures}; see metrics.json, confusion_matrix.png)")

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
            if report.validation_rul_error is not None:
                status += f"  RUL error {report.validation_rul_error:.1%} of the cap"
            progress.update(task, completed=report.epoch, status=status)

        return train(on_epoch)


# both model families fine-tune the same way (train/extra.py)
ExtraDataOption = Annotated[
    Path | None,
    typer.Option(help="a folder of samples from devices (`edgefleet samples pull`): its labelled ones train too"),
]
InitOption = Annotated[
    Path | None,
    typer.Option(help="a run to fine-tune (its weights and input scaling) instead of training anew"),
]


@app.command()
def pdm(
    out: Annotated[Path, typer.Option(help="the run folder to write")],
    epochs: Annotated[int, typer.Option(min=1, max=1000, help="passes over the training data (at most)")] = 30,
    seed: Annotated[int, typer.Option(help="the same seed gives the same data and model")] = 0,
    data: Annotated[
        Path | None,
        typer.Option(
            help="your recordings: a .csv or .parquet file, a CWRU folder (<class>/<record>.mat) "
            "or a C-MAPSS folder (train_FD00x.txt)"
        ),
    ] = None,
    run_to_failure: Annotated[
        bool,
        typer.Option("--run-to-failure", help="synthetic machines run to failure: adds a remaining-useful-life head"),
    ] = False,
    label_column: Annotated[str, typer.Option(help="CSV/Parquet: the column holding each row's class")] = "label",
    window: Annotated[
        int | None, typer.Option(min=2, help="samples per window (with --data); default 512, or 30 cycles for C-MAPSS")
    ] = None,
    hop: Annotated[int, typer.Option(min=1, help="samples between window starts (with --data)")] = 256,
    sample_rate: Annotated[
        float | None, typer.Option(help="Hz; default: from the time column, or 12 kHz for CWRU")
    ] = None,
    subset: Annotated[str, typer.Option(help="C-MAPSS: which subset (FD001 to FD004)")] = "FD001",
    rul_cap: Annotated[int, typer.Option(min=1, help="C-MAPSS: cycles at which the RUL target is capped")] = 125,
    extra_data: ExtraDataOption = None,
    init: InitOption = None,
) -> None:
    """Predictive maintenance: a sensor-window fault classifier (and RUL estimator), on synthetic data or yours."""
    from train import PdmConfig, train_pdm
    from train.datasets import SensorDataset, load_cmapss, load_cwru, load_table

    dataset: SensorDataset | None = None
    if data is not None and data.is_dir() and any(data.glob("train_FD00*.txt")):
        dataset = load_cmapss(data, subset, window_length=window or 30, rul_cap=rul_cap)
    elif data is not None and data.is_dir():
        dataset = load_cwru(data, window_length=window or 512, hop=hop, sample_rate_hz=sample_rate or 12_000.0)
    elif data is not None:
        dataset = load_table(
            data, label_column=label_column, window_length=window or 512, hop=hop, sample_rate_hz=sample_rate
        )
    name = "pump-rul" if run_to_failure else "pump-vibration"
    config = PdmConfig(name=name, epochs=epochs, seed=seed, run_to_failure=run_to_failure)
    run = _with_progress(
        epochs, lambda on_epoch: train_pdm(config, out, on_epoch, dataset, extra=extra_data, init=init)
    )
    _print_run(out, run)
    if extra_data is not None:
        _tell_unlabelled(extra_data, run.labels)


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
    extra_data: ExtraDataOption = None,
    init: InitOption = None,
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
    run = _with_progress(
        epochs, lambda on_epoch: train_vision(config, out, on_epoch, dataset, extra=extra_data, init=init)
    )
    _print_run(out, run)
    if extra_data is not None:
        _tell_unlabelled(extra_data, run.labels)


def _tell_unlabelled(folder: Path, labels: list[str]) -> None:
    """Say how many pulled samples have no label and are left out, and where to give them one."""
    from edgefleet.samples import LABELS_FILE, NO_LABEL, read_folder

    sets = read_folder(folder, tuple(labels))
    unlabelled = sum(int((s.labels == NO_LABEL).sum()) for s in sets)
    if unlabelled:
        Console(stderr=True).print(
            f"[yellow]{unlabelled} samples in {folder} have no label and are skipped[/] "
            f"(write their class in the label column of {folder / LABELS_FILE} to train on them)"
        )


def _print_run(out: Path, run: RunInfo) -> None:
    figures = ", ".join(f"{k} {v:.3f}" for k, v in run.metrics.items())
    _out.print(f"wrote run [bold]{out}[/] ({run.name}; held-out {figures}; see metrics.json, confusion_matrix.png)")

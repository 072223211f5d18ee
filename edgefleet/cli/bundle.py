"""``edgefleet bundle``: mobile app bundles (Android, iOS) of a training run."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from edgefleet.manifest import Precision

__all__ = ["android", "app", "ios"]

app = typer.Typer(help="Bundle a trained model for mobile apps.", no_args_is_help=True)
_out = Console()

_RUN_HELP = "a run folder written by `edgefleet train`"
_OUT_HELP = "the folder for the bundle"
_EXECUTORCH_HELP = "also write an ExecuTorch .pte (XNNPACK) at this precision: fp32 or int8"


def _quiet_torch() -> None:
    # torch logs a deprecation of its own pytree registry when torchao loads; nothing a user can act on
    logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)


def _print(files: list[Path], out: Path) -> None:
    _out.print(f"wrote bundle [bold]{out}[/]:")
    for path in files:
        _out.print(f"  {path.relative_to(out)}", highlight=False)


@app.command()
def android(
    run: Annotated[Path, typer.Argument(help=_RUN_HELP)],
    out: Annotated[Path, typer.Option(help=_OUT_HELP)],
    precision: Annotated[Precision, typer.Option(help="precision of the .tflite")] = Precision.FP32,
    executorch: Annotated[Precision | None, typer.Option(help=_EXECUTORCH_HELP)] = None,
) -> None:
    """Android: a LiteRT .tflite with TFLite metadata and labels, a Kotlin sample and the Gradle lines."""
    from export.bundles import build_android_bundle

    _quiet_torch()
    with Console(stderr=True).status("bundling for Android"):
        files = build_android_bundle(run, out, precision, executorch)
    _print(files, out)


@app.command()
def ios(
    run: Annotated[Path, typer.Argument(help=_RUN_HELP)],
    out: Annotated[Path, typer.Option(help=_OUT_HELP)],
    executorch: Annotated[Precision | None, typer.Option(help=_EXECUTORCH_HELP)] = None,
) -> None:
    """iOS: a Core ML classifier (.mlpackage), its labels and a Swift sample."""
    from export.bundles import build_ios_bundle

    _quiet_torch()
    with Console(stderr=True).status("bundling for iOS"):
        files = build_ios_bundle(run, out, executorch)
    _print(files, out)

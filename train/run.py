"""The run folder a training writes and export reads (``run.json`` and the files it names)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgefleet.errors import InputError
from edgefleet.manifest import Preprocessing, ReferenceProfile

__all__ = ["RUN_FILE", "RulOutput", "RunInfo", "input_channels", "load_run"]

RUN_FILE = "run.json"


class RulOutput(BaseModel):
    """The model's remaining-useful-life head: its estimate is a fraction of ``cap``, in ``unit``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cap: float
    unit: str


class RunInfo(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = 1
    kind: Literal["pdm", "vision"]
    name: str
    labels: list[str]
    preprocessing: Preprocessing
    architecture: str = Field(description="a key of train.models.ARCHITECTURES")
    model_width: float
    checkpoint: str = Field(description="state dict of the float model, relative to the run folder")
    calibration: str = Field(
        description="raw inputs (.npz: train_inputs, held_out_inputs, held_out_labels), relative to the run folder"
    )
    metrics: dict[str, float]
    reference_profile: ReferenceProfile
    rul: RulOutput | None = None


def load_run(run_dir: Path) -> RunInfo:
    """Read a run folder's ``run.json``; raises InputError when it is missing or invalid."""
    path = run_dir / RUN_FILE
    try:
        return RunInfo.model_validate_json(path.read_bytes())
    except OSError as err:
        raise InputError(
            f"{run_dir} holds no {RUN_FILE}", hint="pass a folder written by `edgefleet train pdm --out RUN`"
        ) from err
    except ValidationError as err:
        raise InputError(
            f"{path} is not a valid run description: {err.errors()[0]['msg']}", hint="train again"
        ) from err


def input_channels(run: RunInfo) -> int:
    """How many channels the run's model takes: sensor channels, or the three of RGB."""
    return len(run.preprocessing.channels) if run.preprocessing.kind == "sensor" else 3

"""The import spec: what a model file does not say about itself, read from YAML and validated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, ValidationError, model_validator

from edgefleet.errors import InputError
from edgefleet.ids import ModelName
from edgefleet.manifest import Precision, Preprocessing, Task

__all__ = ["ImportSpec", "load_spec"]

_SHOWN_ERRORS = 5


class ImportSpec(BaseModel):
    """Name, task, labels and preprocessing of a model made elsewhere; shapes come from the model itself."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: ModelName
    task: Task = Task.CLASSIFICATION
    description: str = Field(default="", max_length=2000)
    labels: list[str] = Field(default_factory=list, max_length=10_000)
    preprocessing: Preprocessing
    precision: Precision | None = Field(default=None, description="detected from the model when left out")
    samples: Path | None = Field(default=None, description="an .npy of raw samples, relative to the spec file")
    test_vectors: int = Field(default=4, ge=1, le=16, description="how many inputs the smoke test runs")
    atol: NonNegativeFloat | None = Field(default=None, description="smoke-test tolerance; by precision if left out")
    seed: int = Field(default=0, description="of the random inputs used when no samples are given")
    compatible_profiles: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _labels_for_classifiers(self) -> ImportSpec:
        if self.task is Task.CLASSIFICATION and not self.labels:
            raise ValueError("a classification model needs `labels`: the class names, in the order of its outputs")
        return self


def load_spec(path: Path) -> ImportSpec:
    """Read and validate a YAML spec, with ``samples`` resolved against its folder; raises InputError."""
    try:
        data: Any = yaml.safe_load(path.read_text())
    except OSError as err:
        raise InputError(f"cannot read the spec {path}: {err.strerror}", hint="check the --spec path") from err
    except yaml.YAMLError as err:
        raise InputError(f"{path} is not valid YAML: {err}", hint="fix the YAML syntax at the place shown") from err
    if not isinstance(data, dict):
        raise InputError(
            f"{path} holds no mapping of fields", hint="write `name:`, `labels:` and `preprocessing:` (docs/import.md)"
        )
    try:
        spec = ImportSpec.model_validate(data)
    except ValidationError as err:
        raise InputError(f"{path} is not a valid import spec: {_describe(err)}", hint="see docs/import.md") from err
    if spec.samples is not None and not spec.samples.is_absolute():
        spec = spec.model_copy(update={"samples": path.parent / spec.samples})
    return spec


def _describe(err: ValidationError) -> str:
    problems = [
        f"{'.'.join(map(str, e['loc'])) or 'spec'}: {e['msg'].removeprefix('Value error, ')}"
        for e in err.errors(include_url=False)[:_SHOWN_ERRORS]
    ]
    more = err.error_count() - len(problems)
    return "; ".join(problems) + (f"; and {more} more" if more > 0 else "")

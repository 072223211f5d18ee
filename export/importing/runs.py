"""Feed an imported model the spec's samples (or seeded random inputs) on the runtime the edge agent uses."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edge_agent.backends import Backend
from edgefleet.errors import AgentError, InputError, UnsupportedModelError
from edgefleet.preprocess import prepare_inputs
from export.importing.spec import ImportSpec

__all__ = ["ModelInputs", "model_inputs", "run_model"]

_RANDOM_INPUTS = 16


@dataclass(frozen=True, slots=True)
class ModelInputs:
    batch: npt.NDArray[np.float32]  # what the model takes, after preprocessing
    raw: npt.NDArray[np.generic] | None  # the samples before preprocessing; None for random inputs


def model_inputs(spec: ImportSpec, shape: tuple[int, ...]) -> ModelInputs:
    """The spec's samples, preprocessed as a device will, or seeded random ones of ``shape`` (per input).

    Raises InputError when the samples cannot be read or do not fit the spec.
    """
    if spec.samples is None:
        # preprocessing scales to about zero mean and unit spread, so standard normal inputs are typical ones
        rng = np.random.default_rng(spec.seed)
        return ModelInputs(rng.standard_normal((_RANDOM_INPUTS, *shape), dtype=np.float32), None)
    try:
        raw = np.load(spec.samples, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise InputError(
            f"cannot read the samples {spec.samples}: {err}", hint="give `samples:` an .npy file saved with np.save"
        ) from err
    if len(raw) == 0:
        raise InputError(f"the samples {spec.samples} are empty", hint="save at least one raw sample in the .npy")
    try:
        batch = prepare_inputs(raw, spec.preprocessing)
    except InputError as err:
        raise InputError(
            f"the samples {spec.samples} do not fit the spec: {err.message}",
            hint="save raw samples as the device reads them: sensor windows (N, channels, window length), "
            "or RGB images (N, height, width, 3) of uint8",
        ) from err
    return ModelInputs(batch, raw)


def run_model(
    backend: Backend, input_name: str, batch: npt.NDArray[np.float32], max_batch: int
) -> dict[str, npt.NDArray[np.float32]]:
    """The model's outputs on ``batch``, ``max_batch`` inputs at a time; raises UnsupportedModelError when it fails."""
    try:
        parts = [backend.run({input_name: batch[i : i + max_batch]}) for i in range(0, len(batch), max_batch)]
    except AgentError as err:  # on a device this stops the agent (exit 1); here the user's model is the input
        raise UnsupportedModelError(
            f"the model fails on inputs the spec describes: {err.message}",
            hint="check the model runs on its own, and that the spec's preprocessing is the one it was trained with",
        ) from err
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}

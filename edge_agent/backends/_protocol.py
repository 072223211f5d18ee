"""The plug point every inference runtime implements."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt

__all__ = ["Backend"]


class Backend(Protocol):
    input_names: tuple[str, ...]

    def run(self, inputs: dict[str, npt.NDArray[np.float32]]) -> list[npt.NDArray[np.float32]]:
        """The model's outputs for one batch of inputs."""
        ...

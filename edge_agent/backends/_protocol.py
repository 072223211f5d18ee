"""The plug point every inference runtime implements."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

__all__ = ["Backend", "BackendLoader"]


class Backend(Protocol):
    """One loaded model artifact on one runtime."""

    @property
    def input_names(self) -> tuple[str, ...]: ...

    @property
    def output_names(self) -> tuple[str, ...]: ...

    def run(self, inputs: Mapping[str, npt.NDArray[np.float32]]) -> dict[str, npt.NDArray[np.float32]]:
        """The model's outputs by name for one batch; raises AgentError when the runtime fails on it."""
        ...


# loads the artifact at a path with this many intra-op threads; raises AgentError when it cannot
BackendLoader = Callable[[Path, int], Backend]

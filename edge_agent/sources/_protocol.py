"""The plug point every input source implements."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import numpy as np
import numpy.typing as npt

__all__ = ["Source"]


class Source(Protocol):
    """Raw windows shaped (channels, length) in sensor units, until the agent stops."""

    @property
    def dropped(self) -> int:
        """Windows the source had to discard so far because the agent did not take them in time."""
        ...

    def __iter__(self) -> Iterator[npt.NDArray[np.float32]]: ...

"""The plug point every input source implements."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import numpy as np
import numpy.typing as npt
from typing_extensions import TypeVar

__all__ = ["Source"]

# a bare ``Source`` is a sensor source; image sources are ``Source[np.uint8]``
RawT_co = TypeVar("RawT_co", bound=np.generic, covariant=True, default=np.float32)


class Source(Protocol[RawT_co]):
    """Raw inputs until the agent stops: sensor windows (channels, length) float32 in sensor units, or images
    (height, width, 3) RGB uint8 at the model's size."""

    @property
    def dropped(self) -> int:
        """Inputs the source had to discard so far because the agent did not take them in time."""
        ...

    def __iter__(self) -> Iterator[npt.NDArray[RawT_co]]: ...

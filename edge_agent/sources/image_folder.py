"""Images from a folder (PNG, JPEG) in sorted order, as the model's RGB images."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from edge_agent.sources._pacing import Pacer
from edge_agent.sources.settings import ImageFolderSourceSettings
from edgefleet.errors import ConfigError, InputError
from edgefleet.manifest import ImagePreprocessing

__all__ = ["ImageFolderSource"]

_SUFFIXES: Final = frozenset({".png", ".jpg", ".jpeg"})

# path, height, width → (height, width, 3) RGB uint8
Decode = Callable[[Path, int, int], npt.NDArray[np.uint8]]


class ImageFolderSource:
    """Images (height, width, 3) RGB uint8 resized to the model's size, decoded with Pillow, else OpenCV.

    Files are listed once, at the start. Paced at ``images_per_s``, an image whose time passed while the agent
    was busy is skipped and counted in ``dropped``. Raises InputError now for a missing or empty folder, and
    ConfigError when neither Pillow nor OpenCV is installed; an image that cannot be decoded raises InputError.
    """

    def __init__(
        self,
        settings: ImageFolderSourceSettings,
        spec: ImagePreprocessing,
        stop: threading.Event,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not settings.path.is_dir():
            raise InputError(f"the image folder {settings.path} does not exist", hint="set [source] path to a folder")
        self._files = sorted(p for p in settings.path.iterdir() if p.suffix.lower() in _SUFFIXES and p.is_file())
        if not self._files:
            raise InputError(
                f"the folder {settings.path} holds no .png, .jpg or .jpeg image", hint="put images in it first"
            )
        self._decode = _decoder()
        self._spec = spec
        self._loop = settings.loop
        self._stop = stop
        self._pacer = Pacer(1.0 / settings.images_per_s if settings.images_per_s else 0.0, stop, clock)
        self._dropped = 0

    @property
    def dropped(self) -> int:
        return self._dropped

    def __iter__(self) -> Iterator[npt.NDArray[np.uint8]]:
        while not self._stop.is_set():
            for path in self._files:
                if self._stop.is_set():
                    return
                if not self._pacer.is_on_time():
                    self._dropped += 1  # not even decoded: a late image costs nothing
                    continue
                yield self._decode(path, self._spec.height, self._spec.width)
            if not self._loop:
                return


def _decoder() -> Decode:
    """Pillow when installed (the trainer resizes with it, so images match), else OpenCV; else ConfigError."""
    try:
        from PIL import Image
    except ImportError:
        pass
    else:

        def _pillow(path: Path, height: int, width: int) -> npt.NDArray[np.uint8]:
            try:
                with Image.open(path) as image:
                    resized = image.convert("RGB").resize((width, height), Image.Resampling.BILINEAR)
            except OSError as err:  # Pillow's UnidentifiedImageError is one too
                raise InputError(f"cannot decode the image {path}: {err}", hint="remove or replace the file") from err
            return np.asarray(resized, dtype=np.uint8)

        return _pillow
    try:
        import cv2  # type: ignore[import-not-found, unused-ignore]  # only on devices with a camera
    except ImportError as err:
        raise ConfigError(
            "reading images needs Pillow or OpenCV, and neither is installed",
            hint="pip install pillow (or pip install 'edgefleet[camera]')",
        ) from err

    def _opencv(path: Path, height: int, width: int) -> npt.NDArray[np.uint8]:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise InputError(f"cannot decode the image {path}", hint="remove or replace the file")
        resized = cv2.resize(bgr, (width, height), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(resized[..., ::-1], dtype=np.uint8)

    return _opencv

"""Frames from a camera through OpenCV (a device index, or an RTSP or HTTP stream) as the model's RGB images."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Final, Protocol
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import numpy.typing as npt

from edge_agent.sources._errors import SourceLost
from edge_agent.sources._handoff import Handoff, serve
from edge_agent.sources._reconnect import Backoff, Losses
from edge_agent.sources.settings import CameraSourceSettings
from edgefleet.errors import ConfigError
from edgefleet.manifest import ImagePreprocessing

__all__ = ["CameraSource", "Capture", "to_model_frame"]

# frames waiting for the agent: one newer than the one it is on, so it never sees a stale picture
_CAPACITY: Final = 1

# (image, height, width) → image of that size, the channel order kept
Resize = Callable[[npt.NDArray[np.uint8], int, int], npt.NDArray[np.uint8]]


class Capture(Protocol):
    """The part of ``cv2.VideoCapture`` the source uses: ``grab`` takes a frame, ``retrieve`` decodes it (BGR)."""

    def grab(self) -> bool: ...

    def retrieve(self) -> tuple[bool, npt.NDArray[np.uint8] | None]: ...

    def release(self) -> None: ...


def to_model_frame(bgr: npt.NDArray[np.uint8], spec: ImagePreprocessing, resize: Resize) -> npt.NDArray[np.uint8]:
    """An OpenCV frame (H, W, 3) BGR as the model's image (height, width, 3) RGB uint8; raises SourceLost if not a
    colour frame."""
    if bgr.dtype != np.uint8 or bgr.ndim != 3 or bgr.shape[2] != 3:
        raise SourceLost(
            f"the camera gave a {bgr.dtype} frame shaped {bgr.shape}, not 8-bit colour",
            hint="set the camera to an 8-bit colour (BGR) mode",
        )
    if bgr.shape[:2] != (spec.height, spec.width):
        bgr = resize(bgr, spec.height, spec.width)  # before the flip: OpenCV wants contiguous arrays
    return np.ascontiguousarray(bgr[..., ::-1], dtype=np.uint8)


class CameraSource:
    """Images (height, width, 3) RGB uint8 from a camera, at most ``max_fps`` a second.

    A reader thread keeps taking frames so the picture stays current; the agent gets the newest, and a frame
    it had no time for is counted in ``dropped`` (frames skipped by ``max_fps`` are not drops). A camera that
    fails to open or to read is a ``SourceLost`` in ``losses`` (count, ``is_lost``, last reason), and is
    opened again with backoff. Raises ConfigError now when OpenCV is not installed.
    """

    def __init__(
        self,
        settings: CameraSourceSettings,
        spec: ImagePreprocessing,
        stop: threading.Event,
        *,
        open_capture: Callable[[], Capture] | None = None,
        resize: Resize | None = None,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._name = _shown(settings.device)
        self._spec = spec
        self._stop = stop
        self._period_s = 1.0 / settings.max_fps if settings.max_fps else 0.0
        self._clock = clock
        if open_capture is None or resize is None:
            cv2 = _import_cv2()
            open_capture = open_capture or _opencv_opener(cv2, settings.device)
            resize = resize or _opencv_resize(cv2)
        self._open, self._resize = open_capture, resize
        self._handoff: Handoff[npt.NDArray[np.uint8]] = Handoff(_CAPACITY)
        self.losses = Losses(f"camera {self._name}", backoff or Backoff())

    @property
    def dropped(self) -> int:
        return self._handoff.dropped

    def __iter__(self) -> Iterator[npt.NDArray[np.uint8]]:
        return serve(f"source-camera-{self._name}", self._produce, self._handoff, self._stop)

    def _produce(self, halt: threading.Event) -> None:
        while not halt.is_set():
            try:
                capture = self._open()
            except SourceLost as loss:
                halt.wait(self.losses.lost(loss))
                continue
            try:
                self._read(capture, halt)
            except SourceLost as loss:
                halt.wait(self.losses.lost(loss))
            finally:
                capture.release()

    def _read(self, capture: Capture, halt: threading.Event) -> None:
        next_at = self._clock()
        while not halt.is_set():
            # grab without decoding keeps the driver's buffer fresh while max_fps skips a frame
            if not capture.grab():
                raise SourceLost(f"camera {self._name} stopped giving frames", hint="check its cable or stream")
            now = self._clock()
            if now < next_at:
                continue
            next_at = max(next_at + self._period_s, now)
            ok, frame = capture.retrieve()
            if not ok or frame is None:
                raise SourceLost(f"camera {self._name} gave a frame it could not decode", hint="check the stream")
            self._handoff.put(to_model_frame(frame, self._spec, self._resize))
            self.losses.recovered()


def _shown(device: int | str) -> str:
    """The device as logs may show it: a stream URL without its user and password."""
    if isinstance(device, int):
        return str(device)
    url = urlsplit(device)
    if url.username is None and url.password is None:
        return device
    return urlunsplit(url._replace(netloc=f"***@{url.hostname}" + (f":{url.port}" if url.port else "")))


def _import_cv2() -> Any:
    try:
        import cv2  # type: ignore[import-not-found, unused-ignore]  # only on devices with a camera
    except ImportError as err:
        raise ConfigError(
            "the camera source needs OpenCV, which is not installed", hint="pip install 'edgefleet[camera]'"
        ) from err
    return cv2


def _opencv_opener(cv2: Any, device: int | str) -> Callable[[], Capture]:
    def _open() -> Capture:
        capture = cv2.VideoCapture(device)
        if not capture.isOpened():
            capture.release()
            raise SourceLost(
                f"cannot open camera {_shown(device)}", hint="check the index or URL, and that it is connected"
            )
        opened: Capture = capture
        return opened

    return _open


def _opencv_resize(cv2: Any) -> Resize:
    def _resize(image: npt.NDArray[np.uint8], height: int, width: int) -> npt.NDArray[np.uint8]:
        # area averaging when shrinking, as Pillow's bilinear filter (used in training) averages too
        shrinks = height * width < image.shape[0] * image.shape[1]
        resized: npt.NDArray[np.uint8] = cv2.resize(
            image, (width, height), interpolation=cv2.INTER_AREA if shrinks else cv2.INTER_LINEAR
        )
        return resized

    return _resize

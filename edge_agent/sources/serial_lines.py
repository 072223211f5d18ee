"""Sensor samples from a serial port, one line per sample, cut into the model's windows."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from typing import Final, Protocol

import numpy as np
import numpy.typing as npt

from edge_agent.sources._errors import SourceLost
from edge_agent.sources._handoff import Handoff, serve
from edge_agent.sources._reconnect import Backoff, Losses
from edge_agent.sources._windows import Windower
from edge_agent.sources.settings import SerialSourceSettings
from edgefleet.errors import ConfigError
from edgefleet.manifest import SensorPreprocessing

__all__ = ["LineStream", "SerialLineSource"]

log = logging.getLogger(__name__)

# windows waiting for the agent; past that the oldest goes (a live sensor shows what happens now)
_CAPACITY: Final = 4
# a read returns at least this often, so the thread sees shutdown
_READ_TIMEOUT_S: Final = 0.5
# pause after an empty read: a stream at its end would otherwise spin
_IDLE_S: Final = 0.05
# text without a newline past this is not a sample (a wrong baud rate reads as noise)
_MAX_LINE_BYTES: Final = 4096
_WARN_EVERY_S: Final = 10.0


class LineStream(Protocol):
    """What the reader needs of a port: pyserial's ``Serial``, a pipe or a file opened in binary mode."""

    def readline(self) -> bytes: ...

    def close(self) -> None: ...


class SerialLineSource:
    """Windows (channels, length) from lines of one value per channel, in the model's channel order.

    Values are separated by commas or spaces. A line that does not parse is counted in ``bad_lines``,
    logged at most every few seconds, and skipped. A reader thread drains the port so the data stays live;
    when the agent falls behind, the oldest windows are discarded and counted in ``dropped``. A port that
    fails is noted in ``losses`` and opened again with backoff. Raises ConfigError now if pyserial is missing.
    """

    def __init__(
        self,
        settings: SerialSourceSettings,
        spec: SensorPreprocessing,
        stop: threading.Event,
        *,
        open_stream: Callable[[], LineStream] | None = None,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._port = settings.port
        self._channels = len(spec.channels)
        self._length = spec.window_length
        self._hop = settings.hop or spec.window_length
        self._stop = stop
        self._open = open_stream or _pyserial_opener(settings)
        self._clock = clock
        self._handoff: Handoff[npt.NDArray[np.float32]] = Handoff(_CAPACITY)
        self.losses = Losses(f"serial {settings.port}", backoff or Backoff())
        self.bad_lines = 0
        self._warned_at = -math.inf

    @property
    def dropped(self) -> int:
        return self._handoff.dropped

    def __iter__(self) -> Iterator[npt.NDArray[np.float32]]:
        return serve(f"source-serial-{self._port}", self._produce, self._handoff, self._stop)

    def _produce(self, halt: threading.Event) -> None:
        while not halt.is_set():
            try:
                stream = self._open()
            except OSError as err:  # pyserial's SerialException is an OSError
                delay_s = self.losses.lost(
                    SourceLost(f"cannot open the serial port {self._port}: {err}", hint="check the cable and the port")
                )
                halt.wait(delay_s)
                continue
            self.losses.recovered()
            try:
                self._read(stream, halt)
            except OSError as err:
                halt.wait(
                    self.losses.lost(SourceLost(f"the serial port {self._port} failed: {err}", hint="check the cable"))
                )
            finally:
                stream.close()

    def _read(self, stream: LineStream, halt: threading.Event) -> None:
        windower = Windower(self._channels, self._length, self._hop)
        pending = b""
        while not halt.is_set():
            chunk = stream.readline()
            if not chunk:
                halt.wait(_IDLE_S)
                continue
            pending += chunk
            if not pending.endswith(b"\n"):
                # a read that timed out mid-line: the rest follows, unless it is noise
                if len(pending) > _MAX_LINE_BYTES:
                    self._bad(pending[:80], "no line end")
                    pending = b""
                continue
            sample, pending = self._parse(pending), b""
            if sample is not None:
                for window in windower.extend(sample):
                    self._handoff.put(window)

    def _parse(self, line: bytes) -> list[float] | None:
        try:
            text = line.decode("ascii").strip()
        except UnicodeDecodeError:
            self._bad(line, "not text")
            return None
        if not text:
            return None  # blank lines carry no sample
        fields = text.replace(",", " ").split()
        if len(fields) != self._channels:
            self._bad(line, f"{len(fields)} values, the model needs {self._channels}")
            return None
        try:
            values = [float(f) for f in fields]
        except ValueError:
            self._bad(line, "not numbers")
            return None
        if not all(math.isfinite(v) for v in values):
            self._bad(line, "NaN or infinity")
            return None
        return values

    def _bad(self, line: bytes, reason: str) -> None:
        self.bad_lines += 1
        now = self._clock()
        if now - self._warned_at >= _WARN_EVERY_S:
            self._warned_at = now
            log.warning(
                "source.bad_line",
                extra={"port": self._port, "line": line[:80], "reason": reason, "bad_lines": self.bad_lines},
            )


def _pyserial_opener(settings: SerialSourceSettings) -> Callable[[], LineStream]:
    try:
        import serial  # type: ignore[import-not-found, import-untyped, unused-ignore]  # pyserial has no type hints
    except ImportError as err:
        raise ConfigError(
            "the serial source needs pyserial, which is not installed",
            hint="pip install 'edgefleet[serial]'",
        ) from err

    def _open() -> LineStream:
        # serial_for_url also takes a device path, and rfc2217:// or socket:// for serial over the network
        stream: LineStream = serial.serial_for_url(settings.port, baudrate=settings.baudrate, timeout=_READ_TIMEOUT_S)
        return stream

    return _open

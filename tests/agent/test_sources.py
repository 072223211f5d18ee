"""The agent's input sources on real files, pipes and folders: windows, hop, loops, drops, losses and errors."""

from __future__ import annotations

import csv
import io
import os
import sys
import threading
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

import numpy as np
import pytest

from edge_agent.settings import load_settings
from edge_agent.sources import (
    Backoff,
    CameraSource,
    ImageFolderSource,
    ReplaySource,
    SerialLineSource,
    SimulatedSensor,
    SourceLost,
    open_source,
)
from edge_agent.sources.camera import to_model_frame
from edge_agent.sources.settings import (
    CameraSourceSettings,
    ImageFolderSourceSettings,
    ReplaySourceSettings,
    SerialSourceSettings,
    SimulatedSourceSettings,
)
from edgefleet.errors import ConfigError, InputError
from edgefleet.manifest import ChannelSpec, ImagePreprocessing, SensorPreprocessing
from tests.factories import sensor_preprocessing
from tests.support import wait_until

pytestmark = pytest.mark.integration

CHANNELS = ["vib_x", "temp"]
SENSOR = SensorPreprocessing(
    channels=[ChannelSpec(name=n, mean=0.0, std=1.0) for n in CHANNELS], window_length=4, sample_rate_hz=100.0
)
IMAGE = ImagePreprocessing(height=4, width=6, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
# 20 samples: vib_x = 0..19, temp = 100..119, so every window names the samples it holds
SAMPLES = np.stack([np.arange(20), 100 + np.arange(20)], axis=1).astype(np.float32)


def expected_windows(starts: list[int], length: int = 4) -> list[np.ndarray]:
    return [SAMPLES[s : s + length].T for s in starts]


def assert_windows(got: list[np.ndarray], want: list[np.ndarray]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.dtype == np.float32
        np.testing.assert_array_equal(g, w)


def write_csv(path: Path, rows: np.ndarray = SAMPLES, header: tuple[str, ...] = ("time_s", "temp", "vib_x")) -> Path:
    # columns in another order than the model's, and one it does not use: the source picks by name
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        for i, (vib, temp) in enumerate(rows):
            writer.writerow([f"{i / 100:.2f}", f"{temp:g}", f"{vib:g}"])
    return path


@pytest.fixture
def stop() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()  # ends any source thread a failing test left behind


# ---------------------------------------------------------------- replay


@pytest.mark.parametrize(
    ("hop", "starts"),
    [(None, [0, 4, 8, 12, 16]), (2, [0, 2, 4, 6, 8, 10, 12, 14, 16]), (6, [0, 6, 12])],
)
def test_replay_cuts_the_csv_columns_into_windows_every_hop(
    tmp_path: Path, stop: threading.Event, hop: int | None, starts: list[int]
) -> None:
    settings = ReplaySourceSettings(kind="replay", path=write_csv(tmp_path / "rec.csv"), hop=hop, speed=0)
    assert_windows(list(ReplaySource(settings, SENSOR, stop)), expected_windows(starts))


def test_replay_of_parquet_gives_the_same_windows_as_csv(tmp_path: Path, stop: threading.Event) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "rec.parquet"
    pq.write_table(pa.table({"temp": SAMPLES[:, 1].astype(np.float64), "vib_x": SAMPLES[:, 0].astype(np.int64)}), path)
    settings = ReplaySourceSettings(kind="replay", path=path, hop=3, speed=0)
    assert_windows(list(ReplaySource(settings, SENSOR, stop)), expected_windows([0, 3, 6, 9, 12, 15]))


def test_replay_loops_from_a_fresh_window_at_the_end(tmp_path: Path, stop: threading.Event) -> None:
    settings = ReplaySourceSettings(kind="replay", path=write_csv(tmp_path / "rec.csv"), speed=0, loop=True)
    got = list(islice(ReplaySource(settings, SENSOR, stop), 12))
    assert_windows(got, expected_windows([0, 4, 8, 12, 16] * 2 + [0, 4]))


def test_replay_paced_in_real_time_drops_the_windows_a_slow_agent_missed(tmp_path: Path, stop: threading.Event) -> None:
    now = [0.0]
    # hop 4 at 100 Hz and speed 0.04: one window a second of the fake clock
    settings = ReplaySourceSettings(kind="replay", path=write_csv(tmp_path / "rec.csv"), speed=0.04)
    source = ReplaySource(settings, SENSOR, stop, clock=lambda: now[0])
    windows = iter(source)
    first = next(windows)
    now[0] += 3.5  # the agent was busy for 3.5 windows' time: windows 2 and 3 are gone, 4 is due
    second = next(windows)
    assert source.dropped == 2
    assert_windows([first, second], expected_windows([0, 12]))


def test_replay_row_that_does_not_parse_names_file_line_and_column(tmp_path: Path, stop: threading.Event) -> None:
    path = write_csv(tmp_path / "rec.csv")
    lines = path.read_text().splitlines()
    lines[2] = "0.01,hot,1"  # the second data row, line 3 of the file
    path.write_text("\n".join(lines) + "\n")
    source = ReplaySource(ReplaySourceSettings(kind="replay", path=path, speed=0), SENSOR, stop)
    with pytest.raises(InputError, match=r"rec\.csv, line 3, column 'temp': 'hot' is not a number"):
        list(source)


def test_replay_refuses_a_missing_column_file_or_recording_too_short(tmp_path: Path, stop: threading.Event) -> None:
    no_temp = write_csv(tmp_path / "no_temp.csv", header=("time_s", "temperature", "vib_x"))
    with pytest.raises(InputError, match=r"no_temp\.csv, line 1: no column 'temp'") as err:
        ReplaySource(ReplaySourceSettings(kind="replay", path=no_temp), SENSOR, stop)
    assert "vib_x, temp" in err.value.hint
    with pytest.raises(InputError, match=r"gone\.csv does not exist"):
        ReplaySource(ReplaySourceSettings(kind="replay", path=tmp_path / "gone.csv"), SENSOR, stop)
    short = write_csv(tmp_path / "short.csv", rows=SAMPLES[:3])
    with pytest.raises(InputError, match="fewer samples than one window of 4"):
        list(ReplaySource(ReplaySourceSettings(kind="replay", path=short, speed=0, loop=True), SENSOR, stop))


def test_replay_of_parquet_without_pyarrow_says_what_to_install(
    tmp_path: Path, stop: threading.Event, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "rec.parquet"
    path.write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(ConfigError, match="needs pyarrow") as err:
        ReplaySource(ReplaySourceSettings(kind="replay", path=path), SENSOR, stop)
    assert "pip install pyarrow" in err.value.hint


# ---------------------------------------------------------------- serial lines


def serial_source(stop: threading.Event, stream: io.RawIOBase | io.BufferedIOBase, hop: int | None = None):
    settings = SerialSourceSettings(kind="serial", port="/dev/ttyTEST", hop=hop)
    return SerialLineSource(settings, SENSOR, stop, open_stream=lambda: stream)


def lines(rows: np.ndarray, sep: str = ",") -> bytes:
    return b"".join(f"{vib:g}{sep}{temp:g}\r\n".encode() for vib, temp in rows)


def test_serial_lines_from_a_pipe_become_windows_and_a_bad_line_is_counted_and_skipped(stop: threading.Event) -> None:
    read_fd, write_fd = os.pipe()
    with os.fdopen(read_fd, "rb") as reader, os.fdopen(write_fd, "wb", buffering=0) as writer:
        source = serial_source(stop, reader, hop=2)
        windows = iter(source)
        writer.write(lines(SAMPLES[:4]) + b"\n")  # a blank line is not a sample, and not an error
        first = next(windows)
        # space separated too; a garbled line and a line of the wrong width in between: skipped, not fatal
        writer.write(lines(SAMPLES[4:6], sep=" ") + b"7,1#7\n" + b"1,2,3\n" + lines(SAMPLES[6:12], sep="\t"))
        rest = list(islice(windows, 4))
    assert source.bad_lines == 2
    assert source.dropped == 0
    assert_windows([first, *rest], expected_windows([0, 2, 4, 6, 8]))


class ChunkedPort:
    """What pyserial's readline gives with a timeout: part of a line, or nothing, when the line is slow to come."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.closed = False

    def readline(self) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""

    def close(self) -> None:
        self.closed = True


def test_serial_joins_lines_split_by_read_timeouts_and_skips_noise(stop: threading.Event) -> None:
    port = ChunkedPort([b"0,1", b"", b"00\n", b"\xff\xfe,1\n", b"1,101\n", b"2,nan\n", b"2,102\n", b"3,103\n"])
    source = SerialLineSource(
        SerialSourceSettings(kind="serial", port="loop://"), SENSOR, stop, open_stream=lambda: port
    )
    assert_windows(list(islice(source, 1)), expected_windows([0]))
    assert source.bad_lines == 2  # bytes that are not text, and NaN
    wait_until(lambda: port.closed)  # the reader let go of the port when the agent stopped taking


def test_serial_keeps_the_newest_windows_and_counts_the_rest_when_the_agent_is_slow(stop: threading.Event) -> None:
    many = np.stack([np.arange(80), np.arange(80) + 1000], axis=1).astype(np.float32)
    read_fd, write_fd = os.pipe()
    with os.fdopen(read_fd, "rb") as reader, os.fdopen(write_fd, "wb", buffering=0) as writer:
        source = serial_source(stop, reader)
        windows = iter(source)
        writer.write(lines(many[:4]))
        next(windows)
        writer.write(lines(many[4:]))  # 19 more windows while the agent takes none: 4 wait, 15 go
        wait_until(lambda: source.dropped == 15)
        kept = list(islice(windows, 4))
    for window, start in zip(kept, [64, 68, 72, 76], strict=True):
        np.testing.assert_array_equal(window, many[start : start + 4].T)


def test_serial_without_pyserial_says_what_to_install(stop: threading.Event, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "serial", None)
    with pytest.raises(ConfigError, match="needs pyserial") as err:
        SerialLineSource(SerialSourceSettings(kind="serial", port="/dev/ttyUSB0"), SENSOR, stop)
    assert "pip install 'edgefleet[serial]'" in err.value.hint


# ---------------------------------------------------------------- camera


def bgr_frame(value: int, height: int = 4, width: int = 6) -> np.ndarray:
    frame = np.zeros((height, width, 3), dtype=np.uint8)
    frame[..., 0], frame[..., 1], frame[..., 2] = value, value + 1, value + 2  # B, G, R
    return frame


def nearest(image: np.ndarray, height: int, width: int) -> np.ndarray:
    rows = np.arange(height) * image.shape[0] // height
    cols = np.arange(width) * image.shape[1] // width
    return image[rows][:, cols]


class FakeCapture:
    """Frames from a list, as cv2.VideoCapture gives them (BGR); ``grab`` fails when the list runs out, unless
    ``endless`` repeats the last frame."""

    def __init__(self, frames: list[np.ndarray], *, endless: bool = False) -> None:
        self.frames = frames
        self.endless = endless
        self.released = False
        self._current: np.ndarray | None = None

    def grab(self) -> bool:
        if not self.frames:
            return False
        self._current = self.frames[0] if self.endless and len(self.frames) == 1 else self.frames.pop(0)
        return True

    def retrieve(self) -> tuple[bool, np.ndarray | None]:
        return self._current is not None, self._current

    def release(self) -> None:
        self.released = True


def test_camera_frames_become_rgb_at_the_model_size() -> None:
    frame = to_model_frame(bgr_frame(10, height=8, width=12), IMAGE, nearest)
    assert frame.shape == (4, 6, 3)
    assert frame.dtype == np.uint8
    assert frame[0, 0].tolist() == [12, 11, 10]  # R, G, B
    assert frame.flags.c_contiguous
    with pytest.raises(SourceLost, match="not 8-bit colour"):
        to_model_frame(np.zeros((4, 6), dtype=np.uint8), IMAGE, nearest)


def test_camera_that_disappears_is_reported_lost_and_reopened_with_backoff(stop: threading.Event) -> None:
    opened: list[FakeCapture] = []
    plan: list[list[np.ndarray] | None] = [[bgr_frame(1), bgr_frame(2)], None, [bgr_frame(3)]]

    def _open() -> FakeCapture:
        frames = plan.pop(0)
        if frames is None:
            raise SourceLost("cannot open camera 0")  # still unplugged at the first retry
        opened.append(FakeCapture(frames, endless=not plan))
        return opened[-1]

    source = CameraSource(
        CameraSourceSettings(kind="camera", device=0),
        IMAGE,
        stop,
        open_capture=_open,
        resize=nearest,
        backoff=Backoff(first_s=0.01, max_s=0.02),
    )
    frames = iter(source)
    first = next(frames)
    wait_until(lambda: source.losses.is_lost)
    later = next(frames)
    assert later[0, 0].tolist() == [5, 4, 3]  # the frame after the camera came back
    assert first[0, 0].tolist() in ([3, 2, 1], [4, 3, 2])  # the newest when the agent took it
    wait_until(lambda: not source.losses.is_lost)
    assert source.losses.count == 1  # one loss, however many tries it took to come back
    assert source.losses.last is not None
    assert "cannot open camera 0" in source.losses.last.message
    assert opened[0].released


def test_camera_without_opencv_says_what_to_install(stop: threading.Event, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(ConfigError, match="needs OpenCV") as err:
        CameraSource(CameraSourceSettings(kind="camera", device="rtsp://cam.local/stream"), IMAGE, stop)
    assert "pip install 'edgefleet[camera]'" in err.value.hint


# ---------------------------------------------------------------- image folder


def write_pngs(folder: Path) -> dict[str, tuple[int, int, int]]:
    from PIL import Image

    colours = {"b.png": (200, 10, 30), "a.png": (0, 128, 255), "c.PNG": (7, 8, 9)}
    folder.mkdir()
    for name, colour in colours.items():
        Image.fromarray(np.full((12, 18, 3), colour, dtype=np.uint8)).save(folder / name)
    (folder / "notes.txt").write_text("not an image")
    return colours


def test_image_folder_gives_sorted_rgb_images_at_the_model_size_and_loops(
    tmp_path: Path, stop: threading.Event
) -> None:
    colours = write_pngs(tmp_path / "imgs")
    settings = ImageFolderSourceSettings(kind="image_folder", path=tmp_path / "imgs", loop=True)
    images = list(islice(ImageFolderSource(settings, IMAGE, stop), 5))
    assert all(i.shape == (4, 6, 3) and i.dtype == np.uint8 for i in images)
    order = ["a.png", "b.png", "c.PNG", "a.png", "b.png"]
    assert [tuple(i[2, 3].tolist()) for i in images] == [colours[n] for n in order]
    once = ImageFolderSourceSettings(kind="image_folder", path=tmp_path / "imgs")
    assert len(list(ImageFolderSource(once, IMAGE, stop))) == 3


def test_image_folder_refuses_a_missing_or_empty_folder_and_missing_decoders(
    tmp_path: Path, stop: threading.Event, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(InputError, match="does not exist"):
        ImageFolderSource(ImageFolderSourceSettings(kind="image_folder", path=tmp_path / "gone"), IMAGE, stop)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"holds no \.png"):
        ImageFolderSource(ImageFolderSourceSettings(kind="image_folder", path=tmp_path / "empty"), IMAGE, stop)
    write_pngs(tmp_path / "imgs")
    monkeypatch.setitem(sys.modules, "PIL", None)
    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(ConfigError, match="Pillow or OpenCV") as err:
        ImageFolderSource(ImageFolderSourceSettings(kind="image_folder", path=tmp_path / "imgs"), IMAGE, stop)
    assert "pip install pillow" in err.value.hint


# ---------------------------------------------------------------- factory and settings


def test_open_source_builds_the_source_the_model_takes_and_refuses_a_mismatch(
    tmp_path: Path, stop: threading.Event
) -> None:
    replay = ReplaySourceSettings(kind="replay", path=write_csv(tmp_path / "rec.csv"))
    folder = ImageFolderSourceSettings(kind="image_folder", path=tmp_path / "imgs")
    write_pngs(tmp_path / "imgs")
    assert isinstance(open_source(replay, SENSOR, stop), ReplaySource)
    assert isinstance(open_source(folder, IMAGE, stop), ImageFolderSource)
    assert isinstance(open_source(SimulatedSourceSettings(), sensor_preprocessing(), stop), SimulatedSensor)
    with pytest.raises(ConfigError, match="'image_folder' gives images, but the model takes sensor windows"):
        open_source(folder, SENSOR, stop)
    with pytest.raises(ConfigError, match="'replay' gives sensor windows, but the model takes 6x4 images"):
        open_source(replay, IMAGE, stop)
    with pytest.raises(ConfigError, match="the model needs 4 samples of vib_x, temp"):
        open_source(SimulatedSourceSettings(), SENSOR, stop)


def test_source_settings_are_told_apart_by_kind_and_default_to_simulated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "agent.toml"
    config.write_text('device_id = "pump-7"\n[source]\nkind = "replay"\npath = "rec.csv"\nhop = 2\nloop = true\n')
    source = load_settings(config).source
    assert isinstance(source, ReplaySourceSettings)
    assert (source.path, source.hop, source.loop, source.speed) == (Path("rec.csv"), 2, True, 1.0)
    config.write_text('device_id = "pump-7"\n[source]\nkind = "camera"\n')
    monkeypatch.setenv("EDGEFLEET_AGENT_SOURCE__DEVICE", "2")
    camera = load_settings(config).source
    assert isinstance(camera, CameraSourceSettings)
    assert camera.device == 2  # an index from the environment, not a file named "2"
    config.write_text('device_id = "pump-7"\n[source]\nfault = "looseness"\n')
    assert load_settings(config).source == SimulatedSourceSettings(fault="looseness")
    config.write_text('device_id = "pump-7"\n[source]\nkind = "webcam"\n')
    with pytest.raises(ConfigError, match="source"):
        load_settings(config)

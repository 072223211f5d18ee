"""Users' recordings in their native formats become windows; bad input ends in a clear InputError (exit 2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy.io import savemat

from edgefleet.errors import InputError
from train.datasets import check_dataset, load_cwru, load_table

pytestmark = pytest.mark.integration


def _machine(label: str, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    t = np.arange(n) / 1000.0
    shaft = {"ok": 0.1, "worn": 0.8}[label]
    return {
        "vib": shaft * np.sin(2 * np.pi * 25 * t) + rng.normal(0, 0.05, n),
        "temp": 40 + 10 * (label == "worn") + rng.normal(0, 0.1, n),
    }


def _write_table(path: Path, recordings: list[tuple[str, int]]) -> Path:
    rng = np.random.default_rng(0)
    columns: dict[str, list] = {"timestamp": [], "vib": [], "temp": [], "label": [], "recording": []}
    t0 = 0.0
    for index, (label, n) in enumerate(recordings):
        signals = _machine(label, n, rng)
        columns["timestamp"].extend((t0 + np.arange(n) / 1000.0).tolist())
        columns["vib"].extend(signals["vib"].tolist())
        columns["temp"].extend(signals["temp"].tolist())
        columns["label"].extend([label] * n)
        columns["recording"].extend([f"r{index}"] * n)
        t0 += n / 1000.0 + 1
    table = pa.table(columns)
    if path.suffix == ".parquet":
        pq.write_table(table, path)
    else:
        import pyarrow.csv as pv

        pv.write_csv(table, path)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_table_of_channels_becomes_windows_per_recording(tmp_path: Path, suffix: str) -> None:
    path = _write_table(tmp_path / f"rec{suffix}", [("ok", 1000), ("worn", 1000), ("ok", 600), ("worn", 600)])
    data = check_dataset(load_table(path, window_length=200, hop=100))
    assert data.label_names == ("ok", "worn")
    assert [c for c, _ in data.channels] == ["vib", "temp"]
    assert data.sample_rate_hz == pytest.approx(1000.0)
    assert data.windows.shape == (9 + 9 + 5 + 5, 2, 200)
    assert np.unique(data.groups).tolist() == [0, 1, 2, 3]
    assert data.labels.tolist() == [0] * 9 + [1] * 9 + [0] * 5 + [1] * 5


def test_cwru_folders_of_mat_files_load_with_both_accelerometers(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    for cls, record in (("normal", 97), ("normal", 98), ("outer_race", 130), ("outer_race", 131)):
        (tmp_path / cls).mkdir(exist_ok=True)
        savemat(
            tmp_path / cls / f"{record}.mat",
            {
                f"X{record:03d}_DE_time": rng.normal(size=(5000, 1)),
                f"X{record:03d}_FE_time": rng.normal(size=(4800, 1)),
            },
        )
    data = check_dataset(load_cwru(tmp_path, window_length=1024, hop=512))
    assert data.label_names == ("normal", "outer_race")
    assert data.channels == (("accel_de", "g"), ("accel_fe", "g"))
    assert data.windows.shape[1:] == (2, 1024)
    assert len(np.unique(data.groups)) == 4


def test_training_on_a_users_table_writes_a_run(tmp_path: Path) -> None:
    from train import PdmConfig, train_pdm

    recordings = [(label, 1200) for _ in range(4) for label in ("ok", "worn")]
    data = load_table(_write_table(tmp_path / "rec.csv", recordings), window_length=200, hop=100)
    run = train_pdm(PdmConfig(epochs=6), tmp_path / "run", dataset=data)
    assert run.labels == ["ok", "worn"]
    assert run.preprocessing.kind == "sensor"
    assert run.preprocessing.window_length == 200
    assert run.metrics["accuracy"] >= 0.9


@pytest.mark.parametrize(
    ("recordings", "words"),
    [
        ([("ok", 1000), ("ok", 1000)], "one class only"),
        ([("ok", 100), ("worn", 100)], "gives no windows"),
    ],
)
def test_datasets_that_cannot_be_trained_on_are_refused(tmp_path: Path, recordings: list, words: str) -> None:
    with pytest.raises(InputError, match=words):
        check_dataset(load_table(_write_table(tmp_path / "rec.csv", recordings), window_length=200, hop=100))


def test_nan_in_a_window_names_the_window(tmp_path: Path) -> None:
    path = _write_table(tmp_path / "rec.parquet", [("ok", 1000), ("worn", 1000)])
    table = pq.read_table(path)
    vib = table["vib"].to_numpy().copy()
    vib[350] = np.nan
    pq.write_table(table.set_column(1, "vib", pa.array(vib)), path)
    with pytest.raises(InputError, match="hold NaN"):
        check_dataset(load_table(path, window_length=200, hop=100))


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--data", "/no/such.csv"], "does not exist"),
        (["--data", "README.md"], "neither .csv nor .parquet"),
        (["--data", "{csv}", "--label-column", "fault"], "no label column 'fault'"),
        (["--data", "{empty}"], "holds no <class>/<record>.mat"),
        # wrong shapes: a text column where readings belong, a matrix where CWRU keeps a column,
        # C-MAPSS rows missing columns, windows longer than every recording
        (["--data", "{no_channels}"], "no numeric channel columns"),
        (["--data", "{cwru}"], "has shape (2, 300)"),
        (["--data", "{cmapss}"], "has 5 columns, C-MAPSS has 26"),
        (["--data", "{csv}", "--window", "5000"], "gives no windows"),
    ],
)
def test_the_command_line_refuses_bad_data_with_exit_2(tmp_path: Path, args: list[str], words: str) -> None:
    csv = _write_table(tmp_path / "rec.csv", [("ok", 600), ("worn", 600)])
    (tmp_path / "empty").mkdir()
    (tmp_path / "no_channels.csv").write_text("timestamp,label,note\n0.0,ok,a\n0.1,worn,b\n")
    (tmp_path / "cwru" / "normal").mkdir(parents=True)
    savemat(tmp_path / "cwru" / "normal" / "97.mat", {"X097_DE_time": np.zeros((2, 300))})
    (tmp_path / "cmapss").mkdir()
    (tmp_path / "cmapss" / "train_FD001.txt").write_text("1 1 0.1 0.2 100\n1 2 0.1 0.2 100\n")
    folders = {name: tmp_path / name for name in ("empty", "cwru", "cmapss")}
    filled = [a.format(csv=csv, no_channels=tmp_path / "no_channels.csv", **folders) for a in args]
    result = subprocess.run(
        [sys.executable, "-m", "edgefleet", "train", "pdm", "--out", str(tmp_path / "run"), *filled],
        capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert words in result.stderr
    assert "Traceback" not in result.stderr

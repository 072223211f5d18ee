"""C-MAPSS files load into windows with capped remaining useful life; the score function is NASA's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgefleet.errors import InputError
from train.datasets import load_cmapss
from train.metrics import rul_metrics

pytestmark = pytest.mark.unit


def _write(path: Path, units: dict[int, int]) -> None:
    rng = np.random.default_rng(0)
    lines = []
    for unit, cycles in units.items():
        for cycle in range(1, cycles + 1):
            values = [unit, cycle, *rng.normal(size=3).round(4), *rng.normal(500, 5, size=21).round(2)]
            lines.append(" ".join(str(v) for v in values) + " ")  # the original files end rows with spaces
    path.write_text("\n".join(lines) + "\n")


def test_train_split_counts_down_to_failure_with_the_cap(tmp_path: Path) -> None:
    _write(tmp_path / "train_FD001.txt", {1: 200, 2: 40})
    data = load_cmapss(tmp_path, "FD001", window_length=30, rul_cap=125)
    assert data.windows.shape == (171 + 11, 24, 30)
    assert data.rul is not None
    unit1 = data.rul.values[data.groups == 1]
    assert unit1[0] == 125  # 170 cycles left, capped
    assert unit1[-1] == 0
    assert data.rul.values[data.groups == 2].tolist() == list(range(10, -1, -1))
    # health stages for the class head: healthy at the cap, failing within a quarter of it
    assert data.label_names == ("healthy", "degrading", "failing")
    assert data.labels[data.groups == 1][0] == 0
    assert data.labels[data.groups == 2].tolist() == [2] * 11


def test_test_split_adds_the_true_rul_after_the_last_cycle(tmp_path: Path) -> None:
    _write(tmp_path / "test_FD001.txt", {1: 35, 2: 31})
    (tmp_path / "RUL_FD001.txt").write_text("112\n7\n")
    data = load_cmapss(tmp_path, "FD001", split="test", window_length=30)
    assert data.rul is not None
    assert data.rul.values[data.groups == 1].tolist() == [117, 116, 115, 114, 113, 112]
    assert data.rul.values[data.groups == 2].tolist() == [8, 7]


@pytest.mark.parametrize(
    ("setup", "words"),
    [
        (lambda p: None, "does not exist"),
        (lambda p: (p / "train_FD001.txt").write_text("1 2 3\n"), "has 3 columns"),
        (lambda p: (p / "train_FD001.txt").write_text("a b c\n"), "is not C-MAPSS data"),
    ],
)
def test_bad_files_are_refused_with_what_to_do(tmp_path: Path, setup, words: str) -> None:
    setup(tmp_path)
    with pytest.raises(InputError, match=words):
        load_cmapss(tmp_path, "FD001")


def test_score_punishes_late_predictions_more_than_early_ones() -> None:
    early = rul_metrics([50.0], [40.0])
    late = rul_metrics([50.0], [60.0])
    assert early["rmse"] == late["rmse"] == 10.0
    assert early["cmapss_score"] == pytest.approx(np.exp(10 / 13) - 1)
    assert late["cmapss_score"] == pytest.approx(np.exp(1.0) - 1)
    assert late["cmapss_score"] > early["cmapss_score"]

"""The device's reservoir: bounded in count and bytes, a uniform sample of its candidates, kept across restarts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_agent.reservoir import Picker, Reservoir, true_label
from edge_agent.settings import ReservoirSettings
from edge_agent.telemetry import Prediction
from edgefleet.samples import NO_LABEL, decode_samples
from edgefleet.sensor_sim import FAULTS, Recording
from tests.agent.tiny import build_tiny_package
from tests.support import fill, small_disk_at

pytestmark = pytest.mark.unit

WINDOW = np.zeros((5, 512), dtype=np.float32)


def _offer(reservoir: Reservoir, count: int, start: int = 0) -> None:
    for i in range(start, start + count):
        reservoir.add(np.full((5, 512), i, dtype=np.float32), Prediction(1, 0.3, 1.0), 2, "low-confidence", "m@1.0.0")


def test_keeps_at_most_max_count_and_max_bytes(tmp_path: Path) -> None:
    by_count = Reservoir(tmp_path / "a", ReservoirSettings(max_count=10))
    _offer(by_count, 100)
    assert (by_count.count, by_count.seen) == (10, 100)
    by_bytes = Reservoir(tmp_path / "b", ReservoirSettings(max_count=100, max_bytes=4 * WINDOW.nbytes + 1))
    _offer(by_bytes, 50)
    assert by_bytes.count == 4
    by_bytes.flush()
    on_disk = sum(p.stat().st_size for p in (tmp_path / "b").glob("*.npz"))
    assert on_disk < 5 * WINDOW.nbytes


def test_is_a_uniform_sample_of_every_candidate_not_the_latest(tmp_path: Path) -> None:
    # Algorithm R: each of 1,000 candidates is kept with probability 20/1000, early ones as much as late ones
    kept: list[float] = []
    for seed in range(30):
        reservoir = Reservoir(tmp_path / str(seed), ReservoirSettings(max_count=20), seed=seed)
        _offer(reservoir, 1000)
        batch = reservoir.take(1000, 1 << 30)
        assert batch is not None
        assert batch.count == 20
        kept.extend(decode_samples(batch.payload, max_bytes=1 << 30).inputs[:, 0, 0].tolist())
    first_half = sum(1 for v in kept if v < 500) / len(kept)
    assert 0.4 < first_half < 0.6, first_half


def test_survives_a_restart_and_is_emptied_after_an_upload(tmp_path: Path) -> None:
    reservoir = Reservoir(tmp_path, ReservoirSettings(max_count=8))
    reservoir.label_names = list(FAULTS)
    _offer(reservoir, 5)
    reservoir.flush()
    again = Reservoir(tmp_path, ReservoirSettings(max_count=8))
    again.label_names = list(FAULTS)
    assert (again.count, again.seen) == (5, 5)
    batch = again.take(3, 1 << 30)
    assert batch is not None
    assert batch.count == 3
    samples = decode_samples(batch.payload, max_bytes=1 << 30)
    assert samples.labels.tolist() == [2, 2, 2]
    assert samples.label_names == FAULTS
    assert set(samples.reasons.tolist()) == {"low-confidence"}
    again.clear()
    again.flush()
    assert Reservoir(tmp_path, ReservoirSettings()).count == 0


def test_an_upload_is_cut_to_the_servers_byte_limit(tmp_path: Path) -> None:
    reservoir = Reservoir(tmp_path, ReservoirSettings(max_count=100))
    _offer(reservoir, 100)
    batch = reservoir.take(100, 64 * 1024 + 10 * WINDOW.nbytes)
    assert batch is not None
    assert batch.count == 10
    assert len(batch.payload) < 64 * 1024 + 10 * WINDOW.nbytes


def test_picks_low_confidence_answers_and_inputs_outside_the_reference_range(tmp_path: Path) -> None:
    tiny = build_tiny_package(tmp_path / "pkg")
    reservoir = Reservoir(tmp_path / "r", ReservoirSettings(max_count=1000))
    picker = Picker(tiny.manifest, ReservoirSettings(min_confidence=0.5), reservoir, label=4)
    # the very windows the tiny package's reference profile was made of (tests/agent/tiny.py)
    rng = np.random.default_rng(2)
    normal = [Recording.random(FAULTS.index("normal"), rng).window(i, rng) for _ in range(40) for i in range(10)]
    for window in normal:
        picker.offer(window, Prediction(4, 0.9, 1.0))  # confident, inside the reference range
    picker.check_pending()
    assert reservoir.count == 0
    picker.offer(normal[0], Prediction(4, 0.2, 1.0))
    assert reservoir.count == 1
    for window in normal[:10]:
        picker.offer(window * 10, Prediction(4, 0.99, 1.0))  # a gain change: confident, yet far off the reference
    picker.check_pending()
    assert reservoir.count == 11
    batch = reservoir.take(1000, 1 << 30)
    assert batch is not None
    reasons = decode_samples(batch.payload, max_bytes=1 << 30).reasons.tolist()
    assert reasons.count("low-confidence") == 1
    assert all(r.startswith("out-of-range:") for r in reasons if r != "low-confidence")


def test_only_a_simulated_fault_the_model_knows_is_a_true_label() -> None:
    assert true_label("bearing_outer", FAULTS) == FAULTS.index("bearing_outer")
    assert true_label(None, FAULTS) == NO_LABEL
    assert true_label("bearing_outer", ["good", "bad"]) == NO_LABEL


@pytest.mark.integration
def test_a_full_disk_keeps_the_picks_in_memory_and_says_so(tmp_path: Path) -> None:
    with small_disk_at(tmp_path / "disk") as disk:
        reservoir = Reservoir(disk / "r", ReservoirSettings(max_count=4))
        fill(disk)
        _offer(reservoir, 4)
        with pytest.raises(OSError, match="No space left"):
            reservoir.flush()
        assert not list((disk / "r").glob("*.tmp"))  # no half-written file left on the full disk
        assert reservoir.count == 4

"""The label-free accuracy estimate (CBPE) from the confidence histogram and the confidence sum."""

from __future__ import annotations

import numpy as np
import pytest

from edgefleet.sketch import CONFIDENCE_EDGES, count_into
from fleet_server.drift import estimated_accuracy

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("low", "high"), [(0.3, 1.0), (0.6, 1.0), (0.9, 1.0)])
def test_a_calibrated_model_s_accuracy_is_estimated_within_two_points(low: float, high: float) -> None:
    rng = np.random.default_rng(7)
    confidence = rng.uniform(low, high, size=20_000)
    correct = rng.random(20_000) < confidence  # calibrated: right with probability equal to its confidence
    estimate = estimated_accuracy(count_into(CONFIDENCE_EDGES, confidence), CONFIDENCE_EDGES)
    assert estimate == pytest.approx(correct.mean(), abs=0.02)


def test_no_predictions_give_no_estimate_and_mismatched_edges_are_refused() -> None:
    assert estimated_accuracy([0] * 10, CONFIDENCE_EDGES) is None
    with pytest.raises(ValueError, match="edges"):
        estimated_accuracy([1, 2], CONFIDENCE_EDGES)


def test_the_confidence_sum_gives_the_exact_mean_and_midpoints_stand_in_only_for_the_rest() -> None:
    counts = [0] * 9 + [10]  # ten predictions in the top bin, midpoint 0.95
    assert estimated_accuracy(counts, CONFIDENCE_EDGES, confidence_sum=9.2, summed=10) == pytest.approx(0.92)
    # half the predictions came with a sum (4.6 for 5), the other half count at the midpoint
    assert estimated_accuracy(counts, CONFIDENCE_EDGES, confidence_sum=4.6, summed=5) == pytest.approx(0.935)


def test_the_agent_sends_the_sum_of_its_confidences() -> None:
    from edge_agent.telemetry import IntervalAggregator, Prediction, ReportContext
    from edgefleet.manifest import ArtifactFormat, Precision
    from edgefleet.messages import SystemStats
    from tests.factories import make_manifest

    aggregator = IntervalAggregator(make_manifest([(ArtifactFormat.ONNX, Precision.FP32)]))
    system = SystemStats(cpu_percent=0.0, rss_bytes=0)
    empty = aggregator.message(ReportContext("d", None), seq=0, ts=0.0, interval_s=1.0, system=system)
    assert empty.confidence_sum is None
    for confidence in (0.5, 0.75, 0.95):
        aggregator.add(np.zeros((1, 1), dtype=np.float32), Prediction(0, confidence, 1.0))
    message = aggregator.message(ReportContext("d", None), seq=1, ts=0.0, interval_s=1.0, system=system)
    assert message.confidence_sum == pytest.approx(2.2)

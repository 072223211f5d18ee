"""Per-class figures and class weights, on hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.unit


def test_report_matches_hand_computed_figures() -> None:
    from train.metrics import classification_report

    truth = np.array([0, 0, 0, 1, 1, 2])
    predicted = np.array([0, 0, 1, 1, 1, 0])
    report = classification_report(truth, predicted, ["a", "b", "c"])
    a, b, c = report.per_class
    assert [a.precision, a.recall, b.precision, b.recall] == pytest.approx([2 / 3, 2 / 3, 2 / 3, 1.0])
    assert a.support == 3
    assert (c.precision, c.recall, c.f1) == (0.0, 0.0, 0.0)
    assert report.confusion == [[2, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert report.accuracy == pytest.approx(4 / 6)
    assert report.macro_f1 == pytest.approx((2 / 3 + 0.8 + 0.0) / 3)


def test_rare_classes_weigh_more() -> None:
    from train.fit import class_weights

    weights = class_weights(np.array([0] * 90 + [1] * 10), 3)
    assert weights[1] / weights[0] == pytest.approx(9.0)
    assert float(weights[2]) == 0.0

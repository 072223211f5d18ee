"""The gates an artifact must pass before it may leave the server: parity with PyTorch and accuracy kept."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict

from edgefleet.manifest import Precision

__all__ = [
    "DEFAULT_MAX_ABS_DIFF",
    "DEFAULT_MIN_AGREEMENT",
    "SMOKE_ATOL",
    "GateResult",
    "GateSettings",
    "check_gates",
]

# probabilities from fp32 artifacts match PyTorch to rounding; fp16 weights move them a little; int8 moves
# them most, and what matters there is that the decisions and the accuracy hold
DEFAULT_MAX_ABS_DIFF: Final = {Precision.FP32: 1e-4, Precision.FP16: 1e-2, Precision.INT8: 0.25}
DEFAULT_MIN_AGREEMENT: Final = {Precision.FP32: 1.0, Precision.FP16: 0.99, Precision.INT8: 0.97}
# the largest difference from the recorded outputs the on-device smoke test accepts: the device reruns the
# same artifact, so this covers only differences between runtime builds and CPUs
SMOKE_ATOL: Final = {Precision.FP32: 1e-4, Precision.FP16: 5e-3, Precision.INT8: 5e-2}


class GateResult(BaseModel):
    """One gate of one artifact: its measured value against its limit."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Literal["max_abs_diff", "top1_agreement", "accuracy_drop"]
    value: float
    limit: float
    kind: Literal["at most", "at least"]
    passed: bool

    def describe(self) -> str:
        """E.g. "accuracy_drop 0.021 > at most 0.010 (missed by 0.011)"."""
        miss = abs(self.value - self.limit)
        verdict = "passed" if self.passed else f"missed by {miss:.3g}"
        return f"{self.name} {self.value:.3g}, {self.kind} {self.limit:.3g}: {verdict}"


@dataclass(frozen=True, slots=True)
class GateSettings:
    """Limits per precision for parity, and the largest accuracy drop (a fraction: 0.01 is one point)."""

    max_abs_diff: Mapping[Precision, float] = field(default_factory=lambda: dict(DEFAULT_MAX_ABS_DIFF))
    min_agreement: Mapping[Precision, float] = field(default_factory=lambda: dict(DEFAULT_MIN_AGREEMENT))
    max_accuracy_drop: float = 0.01


def check_gates(
    precision: Precision, max_abs_diff: float, top1_agreement: float, accuracy_drop: float, settings: GateSettings
) -> list[GateResult]:
    """Every gate of one artifact, passed or not."""
    diff_limit = settings.max_abs_diff[precision]
    agreement_limit = settings.min_agreement[precision]
    drop_limit = settings.max_accuracy_drop
    return [
        GateResult(
            name="max_abs_diff", value=max_abs_diff, limit=diff_limit, kind="at most", passed=max_abs_diff <= diff_limit
        ),
        GateResult(
            name="top1_agreement",
            value=top1_agreement,
            limit=agreement_limit,
            kind="at least",
            passed=top1_agreement >= agreement_limit,
        ),
        GateResult(
            name="accuracy_drop",
            value=accuracy_drop,
            limit=drop_limit,
            kind="at most",
            passed=accuracy_drop <= drop_limit + 1e-12,
        ),
    ]

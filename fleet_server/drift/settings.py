"""The server's drift settings (``EDGEFLEET_SERVER_DRIFT__*``): window, buckets, baselines, checks, retention,
thresholds."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat

from fleet_server.drift.stats import DriftThresholds

__all__ = ["DriftSettings"]


class DriftSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    window_s: PositiveFloat = Field(default=3600.0, description="the sliding window drift is judged over")
    check_interval_s: PositiveFloat = Field(
        default=300.0, description="how often the server checks every device and cohort and writes the history"
    )
    bucket_s: PositiveFloat = Field(
        default=300.0,
        description="telemetry is merged per device into buckets this long; windows of two buckets or more start "
        "at a bucket boundary",
    )
    baseline_s: PositiveFloat = Field(
        default=1800.0,
        description="a device is judged against its own first this-many seconds on a model version (once they "
        "hold min_samples); until then its level is not-enough-data and its cohort decides",
    )
    history_retention_s: PositiveFloat = Field(
        default=30 * 86400.0, description="drift history older than this is deleted at each check"
    )
    thresholds: DriftThresholds = DriftThresholds()

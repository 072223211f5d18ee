"""drift: telemetry sketches merged per device and time bucket, devices' own baselines, the fill mark

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "drift_buckets",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("model_name", sa.String(length=64), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("intervals", sa.Integer(), nullable=False),
        sa.Column("counts", sa.LargeBinary(), nullable=False),
        sa.Column("confidence_sum", sa.Float(), nullable=False),
        sa.Column("confidence_summed", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("device_id", "model_name", "model_version", "start", name="uq_drift_buckets_key"),
    )
    op.create_index("ix_drift_buckets_start", "drift_buckets", ["start"])
    op.create_table(
        "drift_baselines",
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("model_name", sa.String(length=64), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("intervals", sa.Integer(), nullable=False),
        sa.Column("counts", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("device_id", "model_name", "model_version"),
    )
    op.create_index("ix_drift_baselines_end", "drift_baselines", ["end"])
    fill = op.create_table(
        "drift_fill",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("bucket_s", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )
    # the one row the periodic check locks while it fills: made here, so two servers never race to insert it
    op.bulk_insert(fill, [{"name": "buckets", "until": None, "bucket_s": None}])


def downgrade() -> None:
    op.drop_table("drift_fill")
    op.drop_index("ix_drift_baselines_end", table_name="drift_baselines")
    op.drop_table("drift_baselines")
    op.drop_index("ix_drift_buckets_start", table_name="drift_buckets")
    op.drop_table("drift_buckets")

"""drift: the history of periodic drift checks, and telemetry indexed by arrival time

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "drift_history",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=True),
        sa.Column("model_name", sa.String(length=64), nullable=True),
        sa.Column("model_version", sa.String(length=64), nullable=True),
        sa.Column("profile", sa.String(length=64), nullable=True),
        sa.Column("tag", sa.String(length=128), nullable=True),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("worst_feature", sa.String(length=64), nullable=True),
        sa.Column("worst_psi", sa.Float(), nullable=True),
        sa.Column("estimated_accuracy", sa.Float(), nullable=True),
        sa.Column("sample_count", sa.Integer(), nullable=False),
        sa.Column("window_s", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_drift_history_at", "drift_history", ["at"])
    op.create_index("ix_drift_history_device_id", "drift_history", ["device_id"])
    op.create_index("ix_drift_history_scope_at", "drift_history", ["scope", "at"])
    op.create_index("ix_telemetry_received_at", "telemetry", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_telemetry_received_at", table_name="telemetry")
    op.drop_index("ix_drift_history_scope_at", table_name="drift_history")
    op.drop_index("ix_drift_history_device_id", table_name="drift_history")
    op.drop_index("ix_drift_history_at", table_name="drift_history")
    op.drop_table("drift_history")

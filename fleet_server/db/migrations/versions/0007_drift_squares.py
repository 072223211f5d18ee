"""drift: per-bin squares next to the counts of buckets and baselines, so the dispersion of intervals is known

The buckets are made again from the raw telemetry (the fill mark is reset): buckets without squares would leave
every window over them without a dispersion. Baselines already closed keep no squares; a device judged against
one takes the dispersion of its live window for both sides.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("drift_buckets", sa.Column("squares", sa.LargeBinary(), nullable=True))
    op.add_column("drift_baselines", sa.Column("squares", sa.LargeBinary(), nullable=True))
    op.execute(sa.text("DELETE FROM drift_buckets"))
    op.execute(sa.text("UPDATE drift_fill SET until = NULL, bucket_s = NULL"))


def downgrade() -> None:
    for table in ("drift_baselines", "drift_buckets"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("squares")

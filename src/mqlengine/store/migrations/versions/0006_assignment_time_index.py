"""index assignments by time (routing reads the last day's assignments of all reps)

Revision ID: 0006_assignment_time_index
Revises: 0005_merge_heads
Create Date: 2026-11-25 10:50:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006_assignment_time_index"
down_revision: str | Sequence[str] | None = "0005_merge_heads"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_assignments_assigned_at", "assignments", ["assigned_at"])


def downgrade() -> None:
    op.drop_index("ix_assignments_assigned_at", table_name="assignments")

"""join the ingest, handoff and reports branches into one head

Revision ID: 0005_merge_heads
Revises: 0002_ingest, 0003_handoff, 0004_reports
Create Date: 2026-11-25 10:05:00
"""

from collections.abc import Sequence

revision: str = "0005_merge_heads"
down_revision: str | Sequence[str] | None = ("0002_ingest", "0003_handoff", "0004_reports")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass

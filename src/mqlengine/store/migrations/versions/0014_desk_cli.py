"""index the lead lists (first page fast at a million persons)

The lead list (`mql leads`, the dashboard's Leads page) shows live persons highest score
first, by stage, team or minimum score, or by first-touch deadline; `GET /v1/persons`
pages through them in stage-change order. Without these indexes every first page read
and sorted every person.

Revision ID: 0014_desk_cli
Revises: 0013_definition_versions
Create Date: 2026-12-03 16:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_desk_cli"
down_revision: str | Sequence[str] | None = "0013_definition_versions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE = "merged_into IS NULL"
INDEXES: dict[str, list[str]] = {
    "ix_persons_live_score": ["total_score", "id"],
    "ix_persons_live_stage_score": ["stage", "total_score", "id"],
    "ix_persons_live_team_score": ["owner_team", "total_score", "id"],
    "ix_persons_live_changed": ["stage_changed_at", "id"],
    "ix_persons_live_sla_due": ["sla_due_at", "first_touch_at"],
}


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.create_index(
            name,
            "persons",
            columns,
            sqlite_where=sa.text(LIVE),
            postgresql_where=sa.text(LIVE),
        )


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, table_name="persons")

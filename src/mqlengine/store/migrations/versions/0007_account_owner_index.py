"""index the owned persons of each account (routing looks up an account's owner per MQL)

Without it, finding the account owner read every person of the account: on a large
account, at each MQL.

Revision ID: 0007_account_owner_index
Revises: 0006_assignment_time_index
Create Date: 2026-11-25 12:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_account_owner_index"
down_revision: str | Sequence[str] | None = "0006_assignment_time_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OWNED = "owner_rep_id IS NOT NULL AND merged_into IS NULL"


def upgrade() -> None:
    op.create_index(
        "ix_persons_account_owner",
        "persons",
        ["account_id", "mql_at", "id"],
        sqlite_where=sa.text(OWNED),
        postgresql_where=sa.text(OWNED),
    )


def downgrade() -> None:
    op.drop_index("ix_persons_account_owner", table_name="persons")

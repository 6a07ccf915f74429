"""definition versions: who applied each one, why, and since when the store decides

* ``definition_versions.author``: who stored the version with ``mql definition apply``
  (the OS user or ``--author``); empty for versions registered from a file.
* ``definition_versions.message``: the reason given with ``--message``.
* ``definition_versions.applied_at``: when ``mql definition apply`` or ``rollback`` last
  made the version live. Once any version has one, the live version is the store's and a
  changed ``mql.yaml`` is no longer made live by other commands.

Revision ID: 0013_definition_versions
Revises: 0012_models
Create Date: 2026-12-04 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from mqlengine.store.types import UTCDateTime

revision: str = "0013_definition_versions"
down_revision: str | Sequence[str] | None = "0012_models"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("definition_versions") as batch:
        batch.add_column(sa.Column("author", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("message", sa.Text(), nullable=True))
        batch.add_column(sa.Column("applied_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("definition_versions") as batch:
        batch.drop_column("applied_at")
        batch.drop_column("message")
        batch.drop_column("author")

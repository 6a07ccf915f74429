"""privacy: events sent without tracking consent, erasures and their suppression list,
and stored secrets encrypted

* ``events.consent_withdrawn``: the event was sent without tracking consent (stored
  stripped, never scored).
* ``erasures``: the audit of erased persons (no personal data: when, by whom, how many
  rows each table lost); ``suppressions``: keyed hashes of erased identifiers whose later
  events are dropped.
* Webhook secrets and destination URLs (Slack webhook URLs and SMTP URLs carry
  credentials) stored in plaintext are encrypted with ``MQL_SECRET_KEY``
  (:mod:`mqlengine.store.secretbox`); with such rows and no key the upgrade stops and
  says so, rather than leave credentials readable.

Revision ID: 0011_privacy
Revises: 0010_keys_audit
Create Date: 2026-12-03 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from mqlengine.errors import ConfigError
from mqlengine.store.secretbox import NO_KEY, SecretBox
from mqlengine.store.types import JsonType, UTCDateTime

revision: str = "0011_privacy"
down_revision: str | Sequence[str] | None = "0010_keys_audit"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column(
        "events",
        sa.Column("consent_withdrawn", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "erasures",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("erased_at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("counts", JsonType, nullable=False),
        sa.Column("after", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erasures")),
    )
    op.create_table(
        "suppressions",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("erasure_id", Id, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["erasure_id"], ["erasures.id"], name=op.f("fk_suppressions_erasure_id_erasures")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suppressions")),
        sa.UniqueConstraint("digest", name=op.f("uq_suppressions_digest")),
    )
    op.create_index(op.f("ix_suppressions_erasure_id"), "suppressions", ["erasure_id"])
    _encrypt_destinations()


def _encrypt_destinations() -> None:
    bind = op.get_bind()
    table = sa.table("destinations", sa.column("id"), sa.column("url"), sa.column("secret"))
    rows = bind.execute(sa.select(table.c.id, table.c.url, table.c.secret)).all()
    plain = [
        r
        for r in rows
        if not SecretBox.is_sealed(r.url)
        or (r.secret is not None and not SecretBox.is_sealed(r.secret))
    ]
    if not plain:
        return
    config = op.get_context().config
    key = config.attributes.get("secret_key") if config is not None else None
    if not key:
        raise ConfigError(
            f"{len(plain)} notification destination(s) hold plaintext credentials to encrypt: "
            + NO_KEY
        )
    box = SecretBox(key)
    for row in plain:
        bind.execute(
            table.update()
            .where(table.c.id == row.id)
            .values(url=box.seal(row.url), secret=box.seal(row.secret))
        )


def downgrade() -> None:
    op.drop_index(op.f("ix_suppressions_erasure_id"), table_name="suppressions")
    op.drop_table("suppressions")
    op.drop_table("erasures")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("consent_withdrawn")

"""Tables of batch jobs: full rescore runs and where each one got to.

A run's ``cursor`` is the last person id whose results are committed; it moves in the
same transaction as those results, so a run killed at any moment resumes after it.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, Integer, String, Table, Text

from mqlengine.store.tables import Id, metadata
from mqlengine.store.types import UTCDateTime

rescore_runs = Table(
    "rescore_runs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("status", String(16), nullable=False),  # running, finished, abandoned
    Column("engine", String(16), nullable=False),
    Column("definition_version", String(100), nullable=False),
    Column("definition_hash", String(64), nullable=False),
    Column("as_of", UTCDateTime(), nullable=False),
    Column("notify", Boolean, nullable=False),
    Column("cursor", BigInteger, nullable=False),  # last person id written (0: none)
    Column("persons_total", Integer, nullable=False),
    Column("persons_done", Integer, nullable=False),
    Column("stage_changes", Integer, nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime(), nullable=True),
    Column("note", Text, nullable=True),
    Index("ix_rescore_runs_status", "status"),
)

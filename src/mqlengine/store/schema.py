"""Every table of the project, registered on one ``metadata`` (import this, not tables.py)."""

from mqlengine.store import (
    tables,
    tables_access,
    tables_batch,
    tables_desk,
    tables_handoff,
    tables_ingest,
    tables_predict,
    tables_privacy,
    tables_reports,
)
from mqlengine.store.tables import metadata

__all__ = [
    "metadata",
    "tables",
    "tables_access",
    "tables_batch",
    "tables_desk",
    "tables_handoff",
    "tables_ingest",
    "tables_predict",
    "tables_privacy",
    "tables_reports",
]

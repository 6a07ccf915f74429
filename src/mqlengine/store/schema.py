"""Every table of the project, registered on one ``metadata`` (import this, not tables.py)."""

from mqlengine.store import tables
from mqlengine.store.tables import metadata

__all__ = ["metadata", "tables"]

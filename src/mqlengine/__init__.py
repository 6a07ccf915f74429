"""MQL Engine: explainable Marketing Qualified Leads as code.

``mqlengine.open(database, definition=…)`` gives an engine with ``ingest``, ``import_file``,
``explain``, ``report``, ``rescore`` and ``unmerge`` (see :mod:`mqlengine.facade`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mqlengine.facade import MqlEngine

from mqlengine.version import __version__


def open(database: str | None = None, **options: Any) -> MqlEngine:
    """An engine over ``database``; see :func:`mqlengine.facade.open` for the options."""
    from mqlengine.facade import open as open_engine

    return open_engine(database, **options)


__all__ = ["__version__", "open"]

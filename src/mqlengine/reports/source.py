"""What the report families read (:class:`ReportSource`), and the source a one-off report
opens (:func:`open_report_source`).

A store that holds no row any report reads (a new database) is answered without DuckDB:
:class:`EmptyReportData` gives the queries that return one row per breakdown key (every
funnel family query) their answer over empty tables, no rows, and builds empty DuckDB
tables on first use for any other query. The report code is the same either way; only
DuckDB and Arrow are not started for nothing (they cost a cold command most of a second).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from mqlengine.reports.data import ReportData
    from mqlengine.store.db import Database

# Every table the report tables are read from (reports/data.py, store/columnar.py).
SOURCE_TABLES = ("persons", "stage_history", "events", "spend", "touches", "assignments")
# What the data knows (ReportData.features); none of it for an empty store.
FEATURES = ("touches", "sla_clocks", "spend", "sales_touches", "sql_stage", "owners")


class ReportSource(Protocol):
    """The report tables, queried with DuckDB's SQL through :meth:`cursor`."""

    @property
    def features(self) -> dict[str, bool]: ...

    @property
    def empty(self) -> bool:
        """Every report table is empty."""
        ...

    def cursor(self) -> Any: ...


class EmptyReportData:
    """The report tables of a store without any of their rows."""

    def __init__(self) -> None:
        self._features = dict.fromkeys(FEATURES, False)
        self._tables: ReportData | None = None

    @property
    def features(self) -> dict[str, bool]:
        return self._features

    @property
    def empty(self) -> bool:
        return True

    def cursor(self) -> Any:
        """A cursor over empty DuckDB tables (made on first use)."""
        if self._tables is None:
            from mqlengine.reports.data import ReportData

            self._tables = ReportData.from_tables({})
        return self._tables.cursor()


def store_is_empty(database: Database) -> bool:
    """Whether no table the reports read holds a row (False when in doubt). On a SQLite
    file this is asked without SQLAlchemy."""
    return database.tables_empty(SOURCE_TABLES)


@contextmanager
def open_report_source(database: Database, *, refresh: bool = False) -> Iterator[ReportSource]:
    """The report tables for one report (a command that runs it and ends): nothing to load
    for an empty store, else :func:`mqlengine.reports.data.open_report_data`."""
    if not refresh and store_is_empty(database):
        yield EmptyReportData()
        return
    from mqlengine.reports.data import open_report_data

    with open_report_data(database, refresh=refresh) as data:
        yield data

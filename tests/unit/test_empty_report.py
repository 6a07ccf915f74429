"""An empty store's reports without DuckDB are the reports over empty DuckDB tables: the
same features, and the same rows for every funnel-family breakdown and filter."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mqlengine.domain.funnel import health_rules_from
from mqlengine.reports import metrics
from mqlengine.reports.data import ReportData
from mqlengine.reports.query import Filters
from mqlengine.reports.service import REPORTS, run_report
from mqlengine.reports.source import EmptyReportData
from mqlengine.store.db import Database

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
BREAKDOWNS = (None, "channel", "source", "campaign", "mql_type", "team", "rep", "cohort", "week")


def test_the_empty_data_knows_what_empty_tables_know() -> None:
    assert EmptyReportData().features == ReportData.from_tables({}).features


@pytest.mark.parametrize("by", [*BREAKDOWNS, "lead_cohort"])
@pytest.mark.parametrize(
    "filters",
    [
        Filters(),
        Filters(since=datetime(2026, 1, 1, tzinfo=UTC), until=NOW, tz="Europe/Berlin"),
        Filters(channel="email", campaign="spring"),
        Filters(mql_type="engagement"),
    ],
)
def test_funnel_rows_are_those_of_empty_tables(by: str | None, filters: Filters) -> None:
    empty = EmptyReportData()
    expected = metrics.funnel_report(ReportData.from_tables({}), filters, by)
    assert metrics.funnel_report(empty, filters, by) == expected
    assert empty._tables is None  # answered without DuckDB


@pytest.mark.parametrize("name", REPORTS)
def test_every_report_of_an_empty_store_is_the_same(name: str) -> None:
    database = Database("sqlite:///:memory:")
    rules = health_rules_from(None)
    by = "cohort" if name == "cohorts" else None
    answers = [
        run_report(database, name, Filters(), now=NOW, rules=rules, by=by, data=data)
        for data in (EmptyReportData(), ReportData.from_tables({}))
    ]
    assert answers[0] == answers[1]

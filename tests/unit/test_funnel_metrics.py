"""Metric maths over DuckDB against a hand-computed fixture (see the numbers in comments).

Five leads, January–March 2026 (UTC):
  p1 paid   first seen 01-10; MQL 01-15 10:00; touch 11:00; SAL 01-16; SQL 01-20; opp 01-25
            (1,000); won 02-20 (800) — converts a month later, still in the January cohort.
  p2 paid   first seen 01-05; MQL 2026-02-01 01:30Z (= 01-31 22:30 in São Paulo); rejected
            02-02 (not_a_fit) → nurture; re-qualified 03-10; SQL 03-12 directly (skips SAL).
  p3 email  first seen 01-20; MQL 01-25; recycled 01-28 (timing).
  p4 email  first seen 01-22; never MQL.
  p5 organic first seen 02-03; MQL 02-05; disqualified 02-06 12:00 (spam).
Spend: paid 2026-01 1,000, paid 2026-02 500, email 2026-01 300.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest

from mqlengine.domain.funnel import HealthRules
from mqlengine.reports import metrics
from mqlengine.reports.data import ReportData
from mqlengine.reports.query import Filters


def t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


PERSONS = [
    (1, "paid", t("2026-01-10T00:00"), "customer"),
    (2, "paid", t("2026-01-05T00:00"), "sql"),
    (3, "email", t("2026-01-20T00:00"), "nurture"),
    (4, "email", t("2026-01-22T00:00"), "lead"),
    (5, "organic", t("2026-02-03T00:00"), "disqualified"),
]
# (id, person, from, to, at, reason, actor, action, type, reactivated, amount)
HISTORY = [
    (1, 1, None, "lead", "2026-01-10T00:00", "created", "system", None, None, False, None),
    (2, 2, None, "lead", "2026-01-05T00:00", "created", "system", None, None, False, None),
    (3, 3, None, "lead", "2026-01-20T00:00", "created", "system", None, None, False, None),
    (4, 4, None, "lead", "2026-01-22T00:00", "created", "system", None, None, False, None),
    (5, 5, None, "lead", "2026-02-03T00:00", "created", "system", None, None, False, None),
    (10, 1, "lead", "mql", "2026-01-15T10:00", "q", "system", None, "fit", False, None),
    (11, 1, "mql", "sal", "2026-01-16T09:00", "accept", "ann", "accept", None, False, None),
    (12, 1, "sal", "sql", "2026-01-20T00:00", "convert", "ann", "convert", None, False, None),
    (13, 1, "sql", "opportunity", "2026-01-25T00:00", "c", "ann", "convert", None, False, 1000.0),
    (14, 1, "opportunity", "customer", "2026-02-20T00:00", "won", "ann", "won", None, False, 800.0),
    (20, 2, "lead", "mql", "2026-02-01T01:30", "q", "system", None, "hand", False, None),
    (21, 2, "mql", "nurture", "2026-02-02T00:00", "not_a_fit", "bo", "reject", None, False, None),
    (22, 2, "nurture", "mql", "2026-03-10T00:00", "rq", "system", None, "hand", True, None),
    (23, 2, "mql", "sql", "2026-03-12T00:00", "convert", "bo", "convert", None, False, None),
    (30, 3, "lead", "mql", "2026-01-25T00:00", "q", "system", None, "fit", False, None),
    (31, 3, "mql", "nurture", "2026-01-28T00:00", "timing", "cy", "recycle", None, False, None),
    (50, 5, "lead", "mql", "2026-02-05T00:00", "q", "system", None, "hand", False, None),
    (
        51,
        5,
        "mql",
        "disqualified",
        "2026-02-06T12:00",
        "spam",
        "cy",
        "disqualify",
        None,
        False,
        None,
    ),
]
RULES = [
    (10, "senior_buyer", 20.0),
    (20, "senior_buyer", 20.0),
    (20, "demo_request", 40.0),
    (22, "senior_buyer", 20.0),
    (50, "demo_request", 40.0),
    (50, "careers_page", -10.0),
]


def _table(columns: list[str], rows: list[tuple[Any, ...]]) -> pa.Table:
    return pa.Table.from_pylist([dict(zip(columns, row, strict=True)) for row in rows])


def build(persons: list[Any] = PERSONS, history: list[Any] = HISTORY) -> ReportData:
    history_rows = [(*h[:4], t(h[4]), *h[5:]) for h in history]
    return ReportData.from_tables(
        {
            "persons": _table(["id", "channel", "first_seen_at", "stage"], persons),
            "history": _table(
                [
                    "id",
                    "person_id",
                    "from_stage",
                    "to_stage",
                    "changed_at",
                    "reason",
                    "actor",
                    "action",
                    "mql_type",
                    "reactivated",
                    "amount",
                ],
                history_rows,
            ),
            "mql_rules": _table(["history_id", "rule", "points"], RULES),
            "touches": _table(["person_id", "touched_at"], [(1, t("2026-01-15T11:00"))]),
            "spend": _table(
                ["channel", "campaign", "month", "amount", "currency"],
                [
                    ("paid", "", "2026-01-01", 1000.0, "USD"),
                    ("paid", "", "2026-02-01", 500.0, "USD"),
                    ("email", "", "2026-01-01", 300.0, "USD"),
                ],
            ),
        }
    )


@pytest.fixture(scope="module")
def data() -> ReportData:
    return build()


Q1 = Filters(since=t("2026-01-01T00:00"), until=t("2026-04-01T00:00"))


def test_funnel_totals_are_cohort_correct(data: ReportData) -> None:
    f = metrics.funnel_total(data, Q1)
    assert (f["mqls"], f["requalified"], f["mql_persons"]) == (5, 1, 4)
    # p2's re-qualified MQL went straight to SQL: it passed SAL too.
    assert (f["sal"], f["sql"], f["opportunities"], f["customers"]) == (2, 2, 1, 1)
    assert f["reviewed"] == 5  # every MQL got a sales verdict
    assert f["acceptance_rate"] == pytest.approx(0.4)
    assert f["sal_rate"] == pytest.approx(0.4)
    assert f["mql_to_sql"] == pytest.approx(0.4)
    assert f["mql_to_customer"] == pytest.approx(0.2)
    # a rejected lead goes to nurture too, but only the recycle action is a recycle
    assert (f["rejected"], f["recycled"], f["disqualified"], f["lost"]) == (1, 1, 1, 0)
    assert f["recycle_rate"] == pytest.approx(0.2)
    assert f["requalification_rate"] == pytest.approx(0.2)
    assert (f["new_leads"], f["leads_became_mql"]) == (5, 4)
    assert f["mql_rate"] == pytest.approx(0.8)
    # Time to MQL over first MQLs: [2, 5, 5.41667, 27.0625] days.
    p1 = 5 + 10 / 24
    assert f["time_to_mql_p50_days"] == pytest.approx((5 + p1) / 2, abs=1e-5)
    assert f["time_to_mql_p90_days"] == pytest.approx(p1 + 0.7 * (27.0625 - p1), abs=1e-5)
    assert f["pipeline_per_mql"] == pytest.approx(200.0)
    assert f["revenue_per_mql"] == pytest.approx(160.0)
    assert f["spend"] == pytest.approx(1800.0)
    assert f["cost_per_mql"] == pytest.approx(360.0)
    assert f["cac"] == pytest.approx(1800.0)


def test_conversion_stays_in_the_cohort_it_entered(data: ReportData) -> None:
    rows = {r["key"]: r for r in metrics.funnel_report(data, Q1, "cohort")}
    assert {k: r["mqls"] for k, r in rows.items()} == {"2026-01": 2, "2026-02": 2, "2026-03": 1}
    # p1 won in February, but counts for the January cohort.
    assert rows["2026-01"]["customers"] == 1
    assert rows["2026-02"]["customers"] == 0
    assert rows["2026-01"]["mql_to_customer"] == pytest.approx(0.5)
    assert rows["2026-01"]["spend"] == pytest.approx(1300.0)
    # Only January MQLs in the period: the February win is still theirs.
    january = metrics.funnel_total(
        data, Filters(since=t("2026-01-01T00:00"), until=t("2026-02-01T00:00"))
    )
    assert (january["mqls"], january["customers"]) == (2, 1)


def test_cohort_month_follows_the_time_zone(data: ReportData) -> None:
    utc = {r["key"]: r["mqls"] for r in metrics.funnel_report(data, Q1, "cohort")}
    local = {
        r["key"]: r["mqls"]
        for r in metrics.funnel_report(
            data, Filters(**{**Q1.__dict__, "tz": "America/Sao_Paulo"}), "cohort"
        )
    }
    assert utc["2026-01"] == 2 and utc["2026-02"] == 2
    assert local["2026-01"] == 3 and local["2026-02"] == 1  # 01:30Z is still January 31 there
    # A period boundary at UTC midnight puts p2's MQL in February.
    feb = metrics.funnel_total(
        data, Filters(since=t("2026-02-01T00:00"), until=t("2026-03-01T00:00"))
    )
    assert feb["mqls"] == 2


def test_breakdown_by_channel_with_cost(data: ReportData) -> None:
    rows = {r["key"]: r for r in metrics.funnel_report(data, Q1, "channel")}
    assert rows["paid"]["mqls"] == 3 and rows["paid"]["cost_per_mql"] == pytest.approx(500.0)
    assert rows["email"]["mqls"] == 1 and rows["email"]["new_leads"] == 2
    assert rows["email"]["mql_rate"] == pytest.approx(0.5)
    # no spend for organic: not 0.00 but unknown, with the reason
    assert rows["organic"]["cost_per_mql"] is None
    assert rows["organic"]["notes"]["cost_per_mql"] == metrics.NO_SPEND
    by_type = {r["key"]: r["mqls"] for r in metrics.funnel_report(data, Q1, "mql_type")}
    assert by_type == {"hand": 3, "fit": 2}


def test_spend_is_prorated_to_the_period(data: ReportData) -> None:
    half = Filters(since=t("2026-01-15T00:00"), until=t("2026-02-15T00:00"), channel="paid")
    f = metrics.funnel_total(data, half)
    assert f["spend"] == pytest.approx(1000 * 17 / 31 + 500 * 14 / 28)
    assert f["mqls"] == 2  # p1 (01-15) and p2 (02-01)


def test_no_mqls_gives_empty_rates_not_zero(data: ReportData) -> None:
    empty = Filters(since=t("2030-01-01T00:00"), until=t("2030-02-01T00:00"))
    f = metrics.funnel_total(data, empty)
    assert f["mqls"] == 0 and f["new_leads"] == 0
    assert f["mql_rate"] is None and f["acceptance_rate"] is None and f["cost_per_mql"] is None
    sla = metrics.sla_report(data, empty, now=t("2030-03-01T00:00"), speed_to_lead_hours=24)[0]
    assert sla["mqls"] == 0 and sla["sla_compliance"] is None
    assert metrics.velocity_report(data, empty) == []
    nothing = build(persons=[], history=[])
    assert metrics.funnel_total(nothing, Filters())["mqls"] == 0
    assert metrics.volume_over_time(nothing, Filters())["series"] == []


def test_speed_to_lead_and_sla(data: ReportData) -> None:
    # First touches after MQL: 1 h (touch), 22.5 h, 48 h, 72 h, 36 h (first sales action).
    sla = metrics.sla_report(data, Q1, now=t("2026-04-01T00:00"), speed_to_lead_hours=24)[0]
    assert sla["touched"] == 5
    assert sla["speed_to_lead_p50_hours"] == pytest.approx(36.0)
    assert sla["speed_to_lead_p90_hours"] == pytest.approx(62.4)
    assert (sla["sla_met"], sla["breaches"], sla["pending"]) == (2, 3, 0)
    assert sla["sla_compliance"] == pytest.approx(0.4)


def test_velocity(data: ReportData) -> None:
    v = metrics.velocity_report(data, Q1)[0]
    assert (v["opportunities"], v["won"], v["lost"]) == (1, 1, 0)
    # no loss recorded: a win rate would say 100 % without knowing the losses
    assert v["win_rate"] is None and v["notes"]["win_rate"] == metrics.NO_LOSSES
    assert v["average_deal"] == pytest.approx(800.0)
    assert v["cycle_days"] == pytest.approx(31.0)  # SQL 01-20 → won 02-20
    assert v["velocity_per_day"] is None


def test_reasons_and_rules_in_rejected_mqls(data: ReportData) -> None:
    result = metrics.reasons_report(data, Q1)
    found = {(r["action"], r["reason"]): r["count"] for r in result["reasons"]}
    assert found == {
        ("reject", "not_a_fit"): 1,
        ("recycle", "timing"): 1,
        ("disqualify", "spam"): 1,
    }
    rules = {r["rule"]: r for r in result["rules_in_rejected"]}
    # Rejected/disqualified without acceptance: p2's first MQL and p5. Accepted: p1, p2's second.
    assert rules["demo_request"]["in_rejected"] == 2
    assert rules["demo_request"]["share_of_rejected"] == 1.0
    assert rules["demo_request"]["share_of_accepted"] == 0.0
    assert rules["senior_buyer"]["share_of_rejected"] == 0.5
    assert rules["senior_buyer"]["lift"] == pytest.approx(0.5)
    assert "careers_page" not in rules  # negative points did not help qualify


def test_health_alerts_and_score(data: ReportData) -> None:
    health = metrics.health_report(data, HealthRules(min_mqls=3), now=t("2026-03-31T00:00"))
    assert health["inputs"]["mqls"] == 5
    codes = {a["code"]: a["severity"] for a in health["alerts"]}
    assert codes == {"low_acceptance": "warning", "low_sla_compliance": "critical"}
    assert health["score"] is not None and 0 <= health["score"] <= 100


def test_open_mqls_and_volume(data: ReportData) -> None:
    extra = [
        *HISTORY,
        (60, 4, "lead", "mql", "2026-03-30T00:00", "q", "system", None, "fit", False, None),
    ]
    persons = [*PERSONS[:3], (4, "email", t("2026-01-22T00:00"), "mql"), PERSONS[4]]
    fresh = build(persons=persons, history=extra)
    result = metrics.open_mqls(fresh, Filters(), now=t("2026-03-30T12:00"), speed_to_lead_hours=24)
    assert [lead["person_id"] for lead in result["leads"]] == [4]
    assert result["leads"][0]["sla_state"] == "pending"
    later = metrics.open_mqls(fresh, Filters(), now=t("2026-04-02T00:00"), speed_to_lead_hours=24)
    assert later["queues"][0]["breached"] == 1
    volume = metrics.volume_over_time(data, Q1, grain="month", by="channel")
    assert volume["buckets"] == ["2026-01-01", "2026-02-01", "2026-03-01"]
    paid = next(s for s in volume["series"] if s["key"] == "paid")
    assert paid["values"] == [1, 1, 1]
    assert timedelta(0) < t("2026-02-01T01:30") - t("2026-01-31T22:30")

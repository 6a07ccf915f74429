"""Every report figure against a count made here, in plain Python, from the same small CRM
data set — loaded through the real commands (`mql history import`, `mql import --kind
persons`, `mql spend import`), on SQLite and PostgreSQL.

The data set holds what real CRM exports hold and what used to come out as a confident 0 or
100 %: a blank channel next to a channel literally called ``unknown``, a win dated before the
lead's MQL, channels without spend, one channel's spend in two currencies, no sales touches
at all (imported history only), no lost deal, and no SQL stage.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from mqlengine.cli.app import app
from mqlengine.reports import metrics
from mqlengine.reports.data import clear_cache
from support.paths import EXAMPLE

CLOCK = "2026-04-01T00:00:00Z"

# One CRM history row per lead: dates of the stages it reached (no SQL column: the CRM
# knows no SQL stage), e-mail, channel ("" = blank).
HISTORY: list[dict[str, Any]] = [
    {"email": "a@x.io", "channel": "paid_search", "created_at": "2026-01-02", "mql_at": "2026-01-05",
     "sal_at": "2026-01-06", "opportunity_at": "2026-01-10", "amount": "1000",
     "customer_at": "2026-02-10", "revenue": "900"},
    {"email": "b@x.io", "channel": "paid_search", "created_at": "2026-01-03", "mql_at": "2026-01-10",
     "rejected_at": "2026-01-12", "reject_reason": "not_a_fit"},
    {"email": "c@x.io", "channel": "", "created_at": "2026-01-04", "mql_at": "2026-01-08",
     "recycled_at": "2026-01-20", "recycle_reason": "timing"},
    {"email": "d@x.io", "channel": "unknown", "created_at": "2026-01-05", "mql_at": "2026-01-15",
     "sal_at": "2026-01-16", "opportunity_at": "2026-01-20", "amount": "500",
     "customer_at": "2026-03-01", "revenue": "400"},
    {"email": "e@x.io", "channel": "", "created_at": "2026-01-06"},
    # won before it was ever an MQL (a CRM date typo or an old customer)
    {"email": "f@x.io", "channel": "email", "created_at": "2026-01-07",
     "customer_at": "2026-01-09", "revenue": "50", "mql_at": "2026-01-20"},
    {"email": "g@x.io", "channel": "email", "created_at": "2026-01-08", "mql_at": "2026-01-25",
     "disqualified_at": "2026-01-26", "disqualify_reason": "student"},
    {"email": "h@x.io", "channel": "unknown", "created_at": "2026-01-09"},
]  # fmt: skip
# Persons without history: one says nothing about its channel, one names it.
PERSONS = [
    {"email": "i@x.io", "lead_source": "", "timestamp": "2026-02-01T00:00:00Z"},
    {"email": "j@x.io", "lead_source": "Webinar", "timestamp": "2026-02-02T00:00:00Z"},
]
SPEND = [
    {"channel": "paid_search", "month": "2026-01", "amount": "1000", "currency": "USD"},
    {"channel": "paid_search", "month": "2026-01", "amount": "1000", "currency": "EUR"},
    {"channel": "email", "month": "2026-01", "amount": "300", "currency": "USD"},
]
RATES = {"USD": 1.0, "EUR": 1.1}
HISTORY_COLUMNS = [
    *("email", "channel", "created_at", "mql_at", "sal_at", "opportunity_at", "amount"),
    *("customer_at", "revenue", "rejected_at", "reject_reason", "recycled_at"),
    *("recycle_reason", "disqualified_at", "disqualify_reason"),
]


# ------------------------------------------------------------------ the independent counts


def near(value: Any) -> Any:
    """Reports round to 6 decimals."""
    return pytest.approx(value, abs=1e-5)


def day(text: str) -> date:
    return date.fromisoformat(text)


def days(a: str, b: str) -> float:
    return float((day(b) - day(a)).days)


def quantile(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (what the README documents)."""
    ordered = sorted(values)
    if not ordered:
        return None
    position = (len(ordered) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def label(channel: str | None) -> str:
    return channel or "(none)"


def in_order(row: dict[str, Any]) -> dict[str, Any]:
    """The history import keeps a stage dated before the lead's MQL at the MQL's date
    (and warns): the lead and its outcome count in its cohort."""
    mql = row.get("mql_at")
    if not mql:
        return row
    later = ("sal_at", "opportunity_at", "customer_at")
    return {**row, **{n: mql for n in later if row.get(n) and day(row[n]) < day(mql)}}


def leads() -> list[dict[str, Any]]:
    out = [{**in_order(r), "channel": label(r["channel"])} for r in HISTORY]
    for p in PERSONS:
        out.append({"email": p["email"], "channel": label(p["lead_source"].lower())})
    return out


def mqls(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r.get("mql_at")]


def after_mql(row: dict[str, Any], name: str) -> bool:
    return bool(row.get(name)) and day(row[name]) >= day(row["mql_at"])


def reached_sal(row: dict[str, Any]) -> bool:
    return any(after_mql(row, n) for n in ("sal_at", "opportunity_at", "customer_at"))


def expected_funnel(rows: list[dict[str, Any]]) -> dict[str, Any]:
    entries = mqls(rows)
    n = len(entries)
    won = [r for r in entries if after_mql(r, "customer_at")]
    verdicts = [
        r
        for r in entries
        if reached_sal(r)
        or r.get("rejected_at")
        or r.get("recycled_at")
        or r.get("disqualified_at")
    ]
    ttm = [days(r["created_at"], r["mql_at"]) for r in entries]
    return {
        "new_leads": len(rows),
        "leads_became_mql": n,
        "mql_rate": n / len(rows) if rows else None,
        "mqls": n,
        "sal": sum(reached_sal(r) for r in entries),
        "opportunities": sum(
            after_mql(r, "opportunity_at") or after_mql(r, "customer_at") for r in entries
        ),
        "customers": len(won),
        "won_before_mql": sum(
            bool(r.get("customer_at")) and not after_mql(r, "customer_at") for r in entries
        ),
        "reviewed": len(verdicts),
        "acceptance_rate": (sum(reached_sal(r) for r in entries) / len(verdicts))
        if verdicts
        else None,
        "rejected": sum(bool(r.get("rejected_at")) for r in entries),
        "recycled": sum(bool(r.get("recycled_at")) for r in entries),
        "disqualified": sum(bool(r.get("disqualified_at")) for r in entries),
        "lost": 0,
        "time_to_mql_p50_days": quantile(ttm, 0.5),
        "time_to_mql_p90_days": quantile(ttm, 0.9),
        "time_to_mql_mean_days": sum(ttm) / n if n else None,
        "pipeline": sum(float(r["amount"]) for r in entries if r.get("amount")),
        "revenue": sum(float(r["revenue"]) for r in won),
    }


def spend_of(channel: str | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for s in SPEND:
        if channel is None or s["channel"] == channel:
            out[s["currency"]] = out.get(s["currency"], 0.0) + float(s["amount"])
    return out


# ------------------------------------------------------------------ loading through the CLI


def _csv(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


class Cli:
    def __init__(self, runner: CliRunner) -> None:
        self.runner = runner

    def __call__(self, *args: str, code: int = 0) -> Result:
        result = self.runner.invoke(app, list(args))
        assert result.exit_code == code, (args, result.output, result.exception)
        return result

    def json(self, *args: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self(*args, "--format", "json").stdout)
        return data


@pytest.fixture
def cli(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cli]:
    clear_cache()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MQL_DATABASE_URL", database_url)
    monkeypatch.setenv("MQL_DEFINITION", str(EXAMPLE))
    monkeypatch.setenv("MQL_CLOCK", CLOCK)
    run = Cli(CliRunner())
    _csv(tmp_path / "crm.csv", HISTORY_COLUMNS, HISTORY)
    out = run("history", "import", "crm.csv")
    assert f"{len(HISTORY)} leads created" in out.output
    _csv(tmp_path / "people.csv", ["email", "lead_source", "timestamp"], PERSONS)
    maps = ("--map", "email=email", "--map", "lead_source=lead_source")
    run("import", "people.csv", "--kind", "persons", *maps, "--map", "timestamp=timestamp")
    _csv(tmp_path / "spend.csv", ["channel", "month", "amount", "currency"], SPEND)
    run("spend", "import", "spend.csv")
    _csv(
        tmp_path / "rates.csv",
        ["currency", "rate"],
        [{"currency": c, "rate": r} for c, r in RATES.items()],
    )
    yield run
    clear_cache()


# ------------------------------------------------------------------ the figures


def test_funnel_total_matches_plain_counts(cli: Cli) -> None:
    report = cli.json("report", "funnel")
    row = report["rows"][0]
    want = expected_funnel(leads())
    for name, value in want.items():
        assert row[name] == near(value), name
    # no SQL stage in the data: SQL is unknown, not silently the opportunity count
    assert row["sql"] is None and row["mql_to_sql"] is None
    assert row["notes"]["sql"] == metrics.NO_SQL_STAGE
    assert report["sql_stage"] is False
    # the win dated before its MQL was imported at the MQL's date: it counts in its cohort
    assert want["won_before_mql"] == 0 and "customers" not in row["notes"]
    # lost is not recycled: each is its own count and rate
    assert row["recycle_rate"] == near(want["recycled"] / want["mqls"])
    assert row["loss_rate"] == 0.0 and row["rejection_rate"] == near(1 / 6)
    # spend in two currencies is never added up into one figure
    assert row["spend"] is None and row["cost_per_mql"] is None and row["cac"] is None
    assert row["spend_by_currency"] == {"EUR": 1000.0, "USD": 1300.0}
    assert "several currencies" in row["notes"]["cost_per_mql"]
    # MQL count and MQL rate in one unit: leads that became MQL ÷ leads
    steps = {s["step"]: s for s in report["steps"]}
    assert steps["leads_became_mql"]["count"] == want["leads_became_mql"]
    assert steps["leads_became_mql"]["conversion"] == near(want["mql_rate"])
    assert steps["sql"]["count"] is None and steps["sql"]["note"] == metrics.NO_SQL_STAGE
    # the opportunity step converts from the last known step (SAL), not from "0 SQLs"
    assert steps["opportunities"]["conversion"] == near(want["opportunities"] / want["sal"])
    assert {n["field"] for n in report["notes"]} >= {"sql", "mql_to_sql", "cost_per_mql"}


def test_channels_blank_is_its_own_row_and_spend_per_row(cli: Cli) -> None:
    rows = {r["key"]: r for r in cli.json("report", "channels")["rows"]}
    everyone = leads()
    assert set(rows) == {r["channel"] for r in everyone} | {"paid_search"}
    for key, row in rows.items():
        want = expected_funnel([r for r in everyone if r["channel"] == key])
        for name in ("new_leads", "leads_became_mql", "mqls", "customers", "reviewed"):
            assert row[name] == want[name], (key, name)
        assert row["mql_rate"] == near(want["mql_rate"]), key
    # a blank channel (history, persons import) is "(none)", apart from a real "unknown"
    assert rows["(none)"]["new_leads"] == 3 and rows["unknown"]["new_leads"] == 2
    assert rows["webinar"]["new_leads"] == 1
    # no spend: "—" with the reason, never 0.00
    for key in ("(none)", "unknown", "webinar"):
        assert rows[key]["cost_per_mql"] is None and rows[key]["spend"] is None
        assert rows[key]["notes"]["cost_per_mql"] == metrics.NO_SPEND
    assert rows["paid_search"]["spend_by_currency"] == spend_of("paid_search")
    assert rows["paid_search"]["cost_per_mql"] is None
    email = rows["email"]
    assert (email["spend"], email["currency"]) == (300.0, "USD")
    assert email["cost_per_mql"] == near(300.0 / 2)
    email_won = expected_funnel([r for r in everyone if r["channel"] == "email"])["customers"]
    if email_won:
        assert email["cac"] == near(300.0 / email_won)
    else:
        assert email["cac"] is None and email["notes"]["cac"] == metrics.NO_CUSTOMERS
    # the blank channel is a filter value like any other
    only = cli.json("report", "funnel", "--channel", "(none)")["rows"][0]
    assert (only["new_leads"], only["mqls"]) == (3, 1)


def test_rates_convert_spend_to_one_currency(cli: Cli) -> None:
    rows = {r["key"]: r for r in cli.json("report", "channels", "--rates", "rates.csv")["rows"]}
    paid = sum(a * RATES[c] for c, a in spend_of("paid_search").items())
    assert rows["paid_search"]["spend"] == near(paid)
    assert rows["paid_search"]["currency"] == "USD"
    assert rows["paid_search"]["cost_per_mql"] == near(paid / 2)
    assert rows["paid_search"]["cac"] == near(paid / 1)
    total = cli.json("report", "funnel", "--rates", "rates.csv")["rows"][0]
    everything = sum(a * RATES[c] for c, a in spend_of(None).items())
    assert total["spend"] == near(everything)
    assert total["cost_per_mql"] == near(everything / 6)
    Path("bad.csv").write_text("currency,rate\nUSD,1\n", encoding="utf-8")
    result = cli("report", "funnel", "--rates", "bad.csv", code=4)
    assert "no rate for EUR" in result.output


def test_sla_without_touches_is_unknown(cli: Cli) -> None:
    row = cli.json("report", "sla")["rows"][0]
    assert row["mqls"] == 6
    for name in ("touched", "speed_to_lead_p50_hours", "sla_met", "breaches", "sla_compliance"):
        assert row[name] is None, name
        assert row["notes"][name] == metrics.NO_TOUCH_DATA
    table = cli("report", "sla").output
    assert "—" in table and "no sales touches recorded" in table


def test_velocity_durations_and_win_rate(cli: Cli) -> None:
    row = cli.json("report", "velocity")["rows"][0]
    entries = mqls(leads())
    won = [r for r in entries if after_mql(r, "customer_at")]
    # no SQL date: the cycle runs from the opportunity (else the MQL), never 0 days
    cycle = [days(r.get("opportunity_at") or r["mql_at"], r["customer_at"]) for r in won]
    to_won = [days(r["mql_at"], r["customer_at"]) for r in won]
    opportunities = expected_funnel(leads())["opportunities"]
    assert (row["opportunities"], row["won"], row["lost"]) == (opportunities, len(won), 0)
    assert row["win_rate"] is None and row["notes"]["win_rate"] == metrics.NO_LOSSES
    assert row["velocity_per_day"] is None and "win_rate" in row["notes"]["velocity_per_day"]
    assert row["average_deal"] == near(sum(float(r["revenue"]) for r in won) / len(won))
    assert row["cycle_p50_days"] == near(quantile(cycle, 0.5))
    assert row["cycle_p90_days"] == near(quantile(cycle, 0.9))
    assert row["cycle_days"] == near(sum(cycle) / len(cycle))
    assert row["mql_to_won_p50_days"] == near(quantile(to_won, 0.5))
    assert row["mql_to_won_p90_days"] == near(quantile(to_won, 0.9))
    assert row["mql_to_won_days"] == near(sum(to_won) / len(to_won))
    # p50 and p90 are in the table and the CSV too, not in JSON only
    table = cli("report", "velocity").output
    assert "cycle p50 d" in table and "cycle p90 d" in table and "MQL→won p90 d" in table
    lines = list(csv.DictReader(io.StringIO(cli("report", "velocity", "--format", "csv").stdout)))
    assert float(lines[0]["cycle_p90_days"]) == near(quantile(cycle, 0.9))
    assert "win_rate: no lost deals" in lines[0]["notes"]


def test_cohorts_count_leads_and_mqls_of_one_cohort(cli: Cli) -> None:
    by_mql = cli.json("report", "cohorts")["rows"]
    for row in by_mql:  # MQL-month cohorts: leads have no MQL month
        assert row["new_leads"] is None and "month first seen" in row["notes"]["new_leads"]
    assert sum(r["mqls"] for r in by_mql) == 6
    by_lead = {r["key"]: r for r in cli.json("report", "cohorts", "--by", "lead_cohort")["rows"]}
    everyone = leads()
    months: dict[str, list[dict[str, Any]]] = {}
    for r in everyone:
        created = r.get("created_at") or next(
            p["timestamp"][:10] for p in PERSONS if p["email"] == r["email"]
        )
        months.setdefault(created[:7], []).append({**r, "created_at": created})
    assert set(by_lead) == set(months)
    for month, rows in months.items():
        want = expected_funnel(rows)
        for name in ("new_leads", "leads_became_mql", "mqls", "customers"):
            assert by_lead[month][name] == want[name], (month, name)


def test_table_and_csv_show_dash_and_reason(cli: Cli) -> None:
    table = cli("report", "channels").output
    assert "(none)" in table and "unknown" in table
    assert "— cost/MQL" in table and metrics.NO_SPEND in table
    lines = list(csv.DictReader(io.StringIO(cli("report", "channels", "--format", "csv").stdout)))
    row = next(r for r in lines if r["key"] == "(none)")
    assert row["cost_per_mql"] == "" and f"cost_per_mql: {metrics.NO_SPEND}" in row["notes"]
    assert cli("report", "html", "r.html").exit_code == 0
    html = Path("r.html").read_text(encoding="utf-8")
    assert 'data-testid="notes"' in html and metrics.NO_SPEND in html


def test_reasons_csv_has_the_rules_table(cli: Cli) -> None:
    lines = list(csv.DictReader(io.StringIO(cli("report", "reasons", "--format", "csv").stdout)))
    by_action: dict[str, int] = {}
    for line in lines:
        by_action[line["action"]] = by_action.get(line["action"], 0) + int(line["count"] or 0)
    assert by_action == {"reject": 1, "recycle": 1, "disqualify": 1}


def test_reasons_csv_keeps_the_columns_of_every_table(capsys: pytest.CaptureFixture[str]) -> None:
    from mqlengine.cli.report import OutputFormat, _emit

    rows = [
        {"action": "reject", "reason": "not_a_fit", "count": 3, "share": 1.0},
        {"action": "rule_in_rejected", "rule": "pricing_page", "in_rejected": 2, "lift": 1.5},
    ]
    _emit(rows, ("action", "reason", "count", "share"), OutputFormat.csv, "reasons", rows)
    lines = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert lines[1]["rule"] == "pricing_page" and lines[1]["in_rejected"] == "2"
    assert lines[1]["lift"] == "1.5" and lines[0]["reason"] == "not_a_fit"


def test_bad_filters_are_refused(cli: Cli) -> None:
    result = cli("report", "funnel", "--tz", "Mars/Olympus", code=4)
    assert "unknown time zone" in result.output
    result = cli("report", "funnel", "--since", "2026-03-01", "--until", "2026-02-01", code=4)
    assert "must be before until" in result.output


def test_health_judges_a_past_window_and_sends_nothing_without_destination(
    cli: Cli, database_url: str
) -> None:
    health = cli.json("report", "health", "--since", "2026-01-01", "--until", "2026-02-01")
    assert health["since"].startswith("2026-01-01") and health["until"].startswith("2026-02-01")
    want = [r for r in mqls(leads()) if r["mql_at"] < "2026-02-01"]
    assert health["inputs"]["mqls"] == len(want)
    assert health["inputs"]["sla_compliance"] is None
    assert health["input_notes"]["sla_compliance"] == metrics.NO_TOUCH_DATA
    as_of = cli.json("report", "health", "--as-of", "2026-02-01")
    assert as_of["until"].startswith("2026-02-01") and as_of["window_days"] == 90
    assert as_of["notified"] == 0  # a past window is judged, not alerted on
    now = cli.json("report", "health")
    assert now["notified"] == 0 and now["alerts_sent"] is False
    assert datetime.fromisoformat(now["until"]) == datetime(2026, 4, 1, tzinfo=UTC)
    # an alert counts as sent only when a destination takes it
    from mqlengine.reports.service import notify_health_alerts
    from mqlengine.settings import Settings
    from mqlengine.wiring import Wiring

    db = Wiring(Settings(database_url, EXAMPLE)).db
    alert = {"alerts": [{"code": "low_acceptance", "severity": "warning", "message": "low"}]}
    moment = datetime(2026, 4, 1, tzinfo=UTC)
    try:
        assert notify_health_alerts(db, alert, now=moment) == 0
        cli("outbox", "add-destination", "ops", "--kind", "webhook", "--url", "https://o.invalid")
        assert notify_health_alerts(db, alert, now=moment) == 1
    finally:
        db.dispose()


# ------------------------------------------------------------------ with real sales actions

# Live MQLs: a VP who requests a demo is a hand-raiser MQL under the example definition; its
# SLA (policy hot_demo_request) is a first touch within 15 business minutes, New York hours.
# (e-mail, MQL time, SLA due, feedback in order); 14:00 UTC = 09:00 in New York.
LIVE: list[tuple[str, str, str, list[tuple[str, str, list[str]]]]] = [
    (
        "kay@northwind.io",
        "2026-02-03T14:00:00+00:00",
        "2026-02-03T14:15:00+00:00",
        [
            ("touch", "2026-02-03T14:10:00+00:00", []),
            ("accept", "2026-02-03T15:00:00+00:00", []),
            ("convert", "2026-02-05T09:00:00+00:00", []),
            ("convert", "2026-02-06T09:00:00+00:00", ["--amount", "2000"]),
            ("won", "2026-02-20T09:00:00+00:00", ["--amount", "1500"]),
        ],
    ),
    (
        "lee@northwind.io",
        "2026-02-04T14:00:00+00:00",
        "2026-02-04T14:15:00+00:00",
        [
            ("touch", "2026-02-04T15:00:00+00:00", []),
            ("accept", "2026-02-04T16:00:00+00:00", []),
            ("convert", "2026-02-05T09:00:00+00:00", ["--amount", "800"]),
            ("lost", "2026-02-25T09:00:00+00:00", ["--reason", "price"]),
        ],
    ),
    ("max@northwind.io", "2026-02-05T14:00:00+00:00", "2026-02-05T14:15:00+00:00", []),
]
FEB = ("--since", "2026-02-01", "--until", "2026-03-01")


def hours(a: str, b: str) -> float:
    return (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds() / 3600


def first_touch(actions: list[tuple[str, str, list[str]]]) -> str | None:
    return min((at for _, at, _ in actions), default=None)


@pytest.fixture
def live(cli: Cli, tmp_path: Path) -> Cli:
    lines = []
    for n, (email, at, _, _) in enumerate(LIVE):
        before = (datetime.fromisoformat(at).replace(minute=0) - timedelta(minutes=1)).isoformat()
        traits = {"email": email, "title": "VP Marketing", "lead_source": "paid_search"}
        lines.append({"type": "identify", "userId": email, "messageId": f"i{n}",
                      "timestamp": before, "traits": traits})  # fmt: skip
        lines.append({"type": "track", "userId": email, "messageId": f"t{n}",
                      "event": "Demo Requested", "timestamp": at})  # fmt: skip
    (tmp_path / "live.jsonl").write_text("\n".join(json.dumps(x) for x in lines), "utf-8")
    assert f"{len(LIVE)} new MQLs" in cli("import", "live.jsonl").output
    for email, _, _, actions in LIVE:
        person = cli.json("explain", email)["person"]["id"]
        for action, at, extra in actions:
            cli("feedback", str(person), action, "--actor", "rep-ann", "--at", at, *extra)
    return cli


def test_sla_counts_only_sales_touches_on_live_mqls(live: Cli) -> None:
    row = live.json("report", "sla", *FEB)["rows"][0]
    speeds = [hours(at, t) for _, at, _, acts in LIVE if (t := first_touch(acts))]
    met = sum(1 for _, at, due, acts in LIVE if (t := first_touch(acts)) and t <= due)
    assert (row["mqls"], row["imported_mqls"], row["touched"]) == (3, 0, len(speeds))
    assert row["speed_to_lead_p50_hours"] == near(quantile(speeds, 0.5))
    assert row["speed_to_lead_p90_hours"] == near(quantile(speeds, 0.9))
    assert row["speed_to_lead_mean_hours"] == near(sum(speeds) / len(speeds))
    assert (row["sla_met"], row["breaches"], row["pending"]) == (met, len(LIVE) - met, 0)
    assert row["sla_compliance"] == near(met / len(LIVE))
    # January holds imported history only: touches elsewhere in the data change nothing
    # there, its MQLs are left out of the SLA instead of counting as breached
    january = live.json("report", "sla", "--until", "2026-02-01")["rows"][0]
    assert january["imported_mqls"] == january["mqls"] == 6
    assert january["sla_compliance"] is None and january["breaches"] is None
    assert "imported history" in january["notes"]["sla_compliance"]


def test_losses_and_sql_stage_from_feedback(live: Cli) -> None:
    v = live.json("report", "velocity", *FEB)["rows"][0]
    assert (v["opportunities"], v["won"], v["lost"]) == (2, 1, 1)
    assert v["win_rate"] == near(0.5)
    # the cycle runs from the SQL date (the first convert), MQL → won from the MQL
    kay = LIVE[0]
    assert v["cycle_days"] == near(hours(kay[3][2][1], kay[3][4][1]) / 24)
    assert v["mql_to_won_days"] == near(hours(kay[1], kay[3][4][1]) / 24)
    assert v["average_deal"] == near(1500.0)
    assert v["velocity_per_day"] == near(2 * 0.5 * 1500 / v["cycle_days"])
    f = live.json("report", "funnel", *FEB)["rows"][0]
    # the data now knows an SQL stage: SQL is a count again
    assert (f["mqls"], f["sal"], f["sql"], f["opportunities"], f["customers"]) == (3, 2, 2, 2, 1)
    assert f["lost"] == 1 and f["loss_rate"] == near(1 / 3) and f["recycled"] == 0
    assert f["acceptance_rate"] == near(1.0)  # both verdicts were accepts
    assert f["mql_to_sql"] == near(2 / 3)

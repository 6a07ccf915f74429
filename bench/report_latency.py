"""Report latency on 1,000,000 persons / 20,000,000 events (target: < 1 s per report query).

The data is generated directly as Parquet with DuckDB (not through the pipeline: this
measures the reports, not ingest): persons with channel/campaign/owner, their stage history
(lead → MQL → outcomes, ~25 % MQL, some re-qualified), touches, SLA clocks, the rules behind
each MQL, spend per campaign and month, and 20 M events. The report tables are then built
once (``ReportData.from_tables``, which derives the per-MQL ``entries``), and every report
query of the dashboard's overview and the CLI is timed (median of 3 runs).

    python -m bench.report_latency [--persons 1000000] [--events 20000000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from bench.common import report
from mqlengine.domain.funnel import HealthRules
from mqlengine.reports import metrics
from mqlengine.reports.data import ReportData
from mqlengine.reports.query import Filters

NOW = datetime(2026, 11, 20, tzinfo=UTC)
CHANNELS = (
    "['organic_search','paid_search','paid_social','email','events','referral','partner','direct']"
)


def generate(folder: Path, persons: int, events: int) -> dict[str, float]:
    """Write the Parquet files; returns seconds per file."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"SET temp_directory = '{folder / 'tmp'}'")
    start = "TIMESTAMPTZ '2025-11-20 00:00:00+00'"
    timings: dict[str, float] = {}
    # hash() is UBIGINT; a signed version keeps list indexing and arithmetic simple.
    con.execute("CREATE MACRO hb(a, b) AS CAST(hash(a, b) % 4294967296 AS BIGINT)")

    def copy(name: str, sql: str) -> None:
        began = time.perf_counter()
        con.execute(f"COPY ({sql}) TO '{folder / name}.parquet' (FORMAT parquet)")
        timings[name] = time.perf_counter() - began

    con.execute(
        f"""CREATE TABLE p AS SELECT id,
            {CHANNELS}[1 + hb(id, 1) % 8] AS channel,
            'campaign-' || (hb(id, 2) % 40) AS campaign,
            'source-' || (hb(id, 3) % 12) AS source,
            {start} + to_seconds(CAST(hb(id, 4) % (365 * 86400) AS BIGINT)) AS first_seen_at,
            hb(id, 5) % 100 AS u1, hb(id, 6) % 100 AS u2, hb(id, 7) % 100 AS u3,
            'rep-' || (hb(id, 8) % 40) AS owner, 'team-' || (hb(id, 9) % 5) AS team
        FROM range(1, {persons} + 1) t(id)"""
    )
    con.execute(
        """CREATE TABLE m AS SELECT id AS person_id, first_seen_at + to_seconds(CAST(
                3600 + hb(id, 10) % (30 * 86400) AS BIGINT)) AS mql_at, u2, u3, channel
            FROM p WHERE u1 < 25"""
    )
    copy(
        "persons",
        "SELECT id, channel, source, campaign, first_seen_at, 'lead' AS stage, owner, team FROM p",
    )
    # History: created, MQL, verdicts and outcomes, 10 % re-qualified 60 days later.
    day = "to_seconds(86400)"
    copy(
        "history",
        f"""SELECT row_number() OVER () AS id, * FROM (
            SELECT id AS person_id, NULL AS from_stage, 'lead' AS to_stage,
                   first_seen_at AS changed_at,
                   'created' AS reason, 'system' AS actor, NULL AS action, NULL AS mql_type,
                   false AS reactivated, NULL::DOUBLE AS amount FROM p
            UNION ALL SELECT person_id, 'lead', 'mql', mql_at, 'qualified', 'system', NULL,
                   ['hand_raiser','fit_qualified','engagement'][1 + u3 % 3], false, NULL FROM m
            UNION ALL SELECT person_id, 'mql', 'sal', mql_at + {day}, 'accept', 'rep', 'accept',
                   NULL, false, NULL FROM m WHERE u2 < 60
            UNION ALL SELECT person_id, 'sal', 'sql', mql_at + 5 * {day}, 'convert', 'rep',
                   'convert', NULL, false, NULL FROM m WHERE u2 < 24
            UNION ALL SELECT person_id, 'sql', 'opportunity', mql_at + 9 * {day}, 'convert', 'rep',
                   'convert', NULL, false, 5000 + u3 * 400 FROM m WHERE u2 < 24
            UNION ALL SELECT person_id, 'opportunity', 'customer', mql_at + 60 * {day}, 'won',
                   'rep', 'won', NULL, false, 4000 + u3 * 350 FROM m WHERE u2 < 6
            UNION ALL SELECT person_id, 'opportunity', 'nurture', mql_at + 50 * {day}, 'price',
                   'rep', 'lost', NULL, false, NULL FROM m WHERE u2 >= 6 AND u2 < 14
            UNION ALL SELECT person_id, 'mql', 'nurture',  mql_at + {day},
                   ['not_a_fit','no_budget','not_ready'][1 + u3 % 3], 'rep', 'reject', NULL, false,
                   NULL FROM m WHERE u2 >= 60 AND u2 < 80
            UNION ALL SELECT person_id, 'mql', 'nurture', mql_at + 2 * {day},
                   ['not_now','timing'][1 + u3 % 2], 'rep', 'recycle', NULL, false, NULL
                   FROM m WHERE u2 >= 80 AND u2 < 90
            UNION ALL SELECT person_id, 'mql', 'disqualified', mql_at + {day}, 'spam', 'rep',
                   'disqualify', NULL, false, NULL FROM m WHERE u2 >= 90 AND u2 < 95
            UNION ALL SELECT person_id, 'nurture', 'mql', mql_at + 60 * {day}, 'requalified',
                   'system', NULL, 'engagement', true, NULL FROM m WHERE u2 >= 60 AND u2 < 70
        )""",
    )
    copy(
        "touches",
        """SELECT person_id, mql_at + to_seconds(CAST(60 + hb(person_id, 11) % 86400 AS BIGINT))
               AS touched_at, 'rep' AS rep FROM m WHERE u3 < 90""",
    )
    copy(
        "sla_clocks",
        """SELECT person_id, mql_at AS started_at, mql_at + to_seconds(7200) AS due_at,
               'rep-' || (hb(person_id, 8) % 40) AS rep, 'team-' || (hb(person_id, 9) % 5) AS team
           FROM m""",
    )
    copy(
        "mql_rules",
        f"""SELECT h.id AS history_id, r.rule, r.points
           FROM read_parquet('{folder / "history.parquet"}') h,
               (VALUES ('senior_buyer', 20.0), ('pricing_page', 15.0), ('demo_request', 40.0),
                       ('target_industry', 10.0)) r(rule, points)
           WHERE h.to_stage = 'mql' AND hb(h.id, r.rule) % 3 > 0""",
    )
    copy(
        "spend",
        f"""SELECT c.channel, 'campaign-' || k AS campaign, month::DATE AS month,
               1000 + hb(k, month) % 9000 AS amount, 'USD' AS currency
           FROM (SELECT unnest({CHANNELS}) AS channel) c, range(0, 5) t(k),
                range(DATE '2025-11-01', DATE '2026-12-01', INTERVAL 1 MONTH) m(month)""",
    )
    copy(
        "events",
        f"""SELECT i AS id, 1 + hb(i, 12) % {persons} AS person_id,
               ['Page Viewed','Email Link Clicked','Webinar Attended','Demo Requested']
                   [1 + hb(i, 13) % 4] AS name,
               {start} + to_seconds(CAST(hb(i, 14) % (365 * 86400) AS BIGINT)) AS timestamp
           FROM range(0, {events}) t(i)""",
    )
    con.close()
    return timings


def timed(run: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    samples = []
    result: Any = None
    for _ in range(repeat):
        began = time.perf_counter()
        result = run()
        samples.append(time.perf_counter() - began)
    return statistics.median(samples), result


def run(persons: int, events: int, folder: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    began = time.perf_counter()
    generated = generate(folder, persons, events)
    rows.append({"step": "generate parquet", "seconds": time.perf_counter() - began, "rows": ""})
    del generated

    def parquet(name: str) -> str:
        return f"SELECT * FROM read_parquet('{folder / name}.parquet')"

    began = time.perf_counter()
    data = ReportData.from_tables(
        {
            "persons": parquet("persons"),
            "history": parquet("history"),
            "touches": parquet("touches"),
            "sla_clocks": parquet("sla_clocks"),
            "mql_rules": parquet("mql_rules"),
            "spend": parquet("spend"),
            "events_daily": (
                f"SELECT CAST(timestamp AS DATE) AS day, count(*) AS events "
                f"FROM read_parquet('{folder / 'events'}.parquet') GROUP BY 1"
            ),
        }
    )
    cursor = data.cursor()
    counts = {
        name: cursor.execute(f"SELECT count(*) FROM {name}").fetchone()[0]  # type: ignore[index]
        for name in ("persons", "history", "entries")
    }
    rows.append(
        {
            "step": "load + derive entries (once)",
            "seconds": time.perf_counter() - began,
            "rows": f"{counts['persons']:,} persons, {counts['history']:,} changes, "
            f"{counts['entries']:,} MQLs, {events:,} events",
        }
    )
    rules = HealthRules()
    year = Filters(since=NOW - timedelta(days=365), until=NOW)
    quarter = Filters(since=NOW - timedelta(days=90), until=NOW, channel="paid_search")
    queries: list[tuple[str, Callable[[], Any]]] = [
        ("funnel total (year)", lambda: metrics.funnel_total(data, year)),
        ("funnel by channel", lambda: metrics.funnel_report(data, year, "channel")),
        ("funnel by campaign", lambda: metrics.funnel_report(data, year, "campaign")),
        ("cohorts", lambda: metrics.funnel_report(data, year, "cohort")),
        ("funnel by rep", lambda: metrics.funnel_report(data, year, "rep")),
        ("funnel filtered (quarter, channel)", lambda: metrics.funnel_total(data, quarter)),
        (
            "sla by team",
            lambda: metrics.sla_report(data, year, now=NOW, speed_to_lead_hours=24, by="team"),
        ),
        ("velocity by channel", lambda: metrics.velocity_report(data, year, "channel")),
        ("reasons + rules in rejected", lambda: metrics.reasons_report(data, year)),
        ("volume per week by channel", lambda: metrics.volume_over_time(data, year)),
        ("health (90 days, 2 windows)", lambda: metrics.health_report(data, rules, now=NOW)),
        (
            "open MQLs per queue",
            lambda: metrics.open_mqls(data, year, now=NOW, speed_to_lead_hours=24),
        ),
        ("full overview (all of it)", lambda: metrics.overview(data, year, rules, now=NOW)),
    ]
    for name, query in queries:
        seconds, _ = timed(query)
        rows.append({"step": name, "seconds": seconds, "rows": "ok" if seconds < 1.0 else "SLOW"})
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=20_000_000)
    args = parser.parse_args(argv or [])
    with tempfile.TemporaryDirectory(prefix="mql-bench-") as tmp:
        folder = Path(tmp)
        (folder / "tmp").mkdir()
        rows = run(args.persons, args.events, folder)
    report(
        "report_latency",
        rows,
        notes=f"{args.persons:,} persons / {args.events:,} events; report queries: median of 3 "
        "runs on the in-memory DuckDB report tables (target < 1 s each).",
    )


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])

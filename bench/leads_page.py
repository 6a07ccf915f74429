"""The Leads page at a million persons: the first page (and its bounded count) per filter.

Builds N persons by bulk SQL on a migrated SQLite file (``WITH RECURSIVE``: scores,
stages, channels, teams, MQL dates and SLA deadlines spread over the rows), then times
``lead_page`` for the default view and common filters, wall and CPU time (median of 5).

    .venv/bin/python -m bench.leads_page --persons 1000000
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.common import report
from mqlengine.services.leads import LeadView, lead_page
from mqlengine.store.db import Database

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
BUILD = """
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count)
INSERT INTO persons (id, traits, profile, flags, email, channel, first_seen_at, last_seen_at,
  stage, stage_changed_at, mql_type, mql_at, fit_score, intent_score, total_score,
  row_version, created_at, updated_at, owner_team, sla_due_at, first_touch_at)
SELECT i, '{}', '{}', '[]', 'p' || i || '@example.com',
  CASE i % 5 WHEN 0 THEN 'email' WHEN 1 THEN 'paid_search' WHEN 2 THEN 'organic'
       WHEN 3 THEN 'social' ELSE NULL END,
  datetime('2026-01-01', '+' || (i % 330) || ' days'),
  datetime('2026-01-01', '+' || (i % 330) || ' days'),
  CASE WHEN i % 20 = 0 THEN 'mql' WHEN i % 50 = 1 THEN 'sal' ELSE 'lead' END,
  datetime('2026-01-01', '+' || (i % 330) || ' days'),
  CASE WHEN i % 20 = 0 THEN 'engagement' END,
  CASE WHEN i % 20 = 0 THEN datetime('2026-01-02', '+' || (i % 330) || ' days') END,
  (i * 7919) % 60, (i * 104729) % 100, ((i * 7919) % 60) + ((i * 104729) % 100) * 0.5,
  1, datetime('2026-01-01'), datetime('2026-01-01'),
  CASE WHEN i % 20 = 0 THEN CASE i % 3 WHEN 0 THEN 'emea' WHEN 1 THEN 'na' ELSE 'apac' END END,
  CASE WHEN i % 20 = 0 THEN datetime('2026-12-01 10:00', '+' || (i % 7) || ' hours') END,
  NULL
FROM n
"""
CASES = {
    "default (score order)": {},
    "stage=mql": {"stage": "mql"},
    "team=emea": {"team": "emea"},
    "channel=email, score ≥ 50": {"channel": "email", "score_min": "50"},
    "SLA breached": {"sla": "breached"},
    "created in March, by date": {
        "created_from": "2026-03-01",
        "created_to": "2026-04-01",
        "sort": "created",
    },
    "page 200": {"page": "200"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--persons", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{Path(tmp) / 'leads.db'}")
        db.migrate()
        started = time.perf_counter()
        with db.begin() as c:
            c.exec_driver_sql("DROP INDEX IF EXISTS ix_persons_email")
            from sqlalchemy import text

            c.execute(text(BUILD), {"count": args.persons})
        with db.begin() as c:
            c.exec_driver_sql("CREATE INDEX ix_persons_email ON persons (email)")
            c.exec_driver_sql("ANALYZE")
        built = time.perf_counter() - started
        rows = []
        for label, params in CASES.items():
            filters = LeadView.parse(params)
            walls, cpus, matching = [], [], 0
            for _ in range(5):
                w, p = time.perf_counter(), time.process_time()
                with db.read() as c:
                    page = lead_page(c, filters, now=NOW)
                walls.append((time.perf_counter() - w) * 1000)
                cpus.append((time.process_time() - p) * 1000)
                matching = page.matching
            rows.append(
                {
                    "view": label,
                    "wall ms (median)": statistics.median(walls),
                    "CPU ms (median)": statistics.median(cpus),
                    "matching (≤10,000)": matching,
                }
            )
        db.dispose()
    report(
        "leads_page",
        rows,
        notes=f"{args.persons:,} persons built in {built:.1f} s (SQLite); target < 300 ms",
    )


if __name__ == "__main__":
    main()

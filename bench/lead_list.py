"""The first page of the lead list at 1,000,000 persons (target: < 300 ms).

Persons are written by one bulk ``INSERT … SELECT`` over a recursive counter into a
migrated SQLite file (not through the pipeline: this measures the list, not ingest), with
stages, scores, owners, teams and SLA clocks spread like a busy desk. Then the first page
of ``query_leads`` (what `mql leads` and the dashboard's Leads page call) and of
``list_page`` (``GET /v1/persons``) is timed for common filters: median of 5 runs, wall
and CPU time (``time.process_time``), with and without the count of all matches.

    python -m bench.lead_list [--persons 1000000] [--database PATH]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bench.common import report
from mqlengine.services.leads import LeadFilter, list_page, query_leads
from mqlengine.store.db import Database

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
STAGES = "'lead','lead','lead','lead','lead','lead','nurture','mql','sal','sql'"


def build(database: Database, persons: int) -> float:
    """Write ``persons`` rows (and 40 reps in 5 teams); returns seconds."""
    began = time.perf_counter()
    with database.begin() as connection:
        stamp = "'2026-11-01 00:00:00'"
        for team in range(5):
            connection.execute(
                text(
                    "INSERT INTO teams (name, created_at, updated_at) "
                    f"VALUES ('team-{team}', {stamp}, {stamp})"
                )
            )
        for rep in range(40):
            connection.execute(
                text(
                    "INSERT INTO reps (key, name, team_id, timezone, territories, active, "
                    "created_at, updated_at) VALUES "
                    f"('rep-{rep}', 'Rep {rep}', {1 + rep % 5}, 'UTC', '[]', 1, {stamp}, {stamp})"
                )
            )
        connection.execute(
            text(
                f"""
                WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {persons})
                INSERT INTO persons (
                    id, traits, profile, flags, email, channel, first_seen_at, last_seen_at,
                    stage, stage_changed_at, fit_score, intent_score, total_score,
                    row_version, created_at, updated_at,
                    owner_rep_id, owner_team, sla_due_at, first_touch_at
                )
                SELECT i, '{{}}', '{{}}', '[]', 'p' || i || '@example.com', 'email',
                    datetime('2025-11-20', '+' || (i % 365) || ' days'),
                    datetime('2026-11-19', '+' || (i % 86400) || ' seconds'),
                    json_extract(json_array({STAGES}), '$[' || (i * 7919 % 10) || ']'),
                    datetime('2025-11-20', '+' || (i * 31 % 31536000) || ' seconds'),
                    (i * 37 % 60), (i * 53 % 100) * 1.0, (i * 37 % 60) + (i * 53 % 100) * 1.0,
                    1, {stamp}, {stamp},
                    CASE WHEN i % 4 = 0 THEN 1 + i % 40 END,
                    CASE WHEN i % 4 = 0 OR i % 20 = 1 THEN 'team-' || (i % 5) END,
                    CASE WHEN i % 4 = 0 THEN datetime('2026-11-18 12:00:00',
                        '+' || (i * 13 % 96) || ' hours') END,
                    CASE WHEN i % 8 = 0 THEN datetime('2026-11-19 12:00:00') END
                FROM n
                """
            )
        )
    with database.begin() as connection:
        connection.execute(text("ANALYZE"))
    return time.perf_counter() - began


def timed(run: Callable[[], Any], repeat: int = 5) -> tuple[float, float]:
    """Median wall and CPU milliseconds of ``run``."""
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        walls.append((time.perf_counter() - wall) * 1000)
        cpus.append((time.process_time() - cpu) * 1000)
    return statistics.median(walls), statistics.median(cpus)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--database", type=Path, default=None, help="keep the file here")
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="mql-bench-leads-"))
    path = args.database or folder / "leads.db"
    database = Database(f"sqlite:///{path}")
    database.migrate()
    with database.read() as connection:
        empty = connection.execute(text("SELECT count(*) FROM persons")).scalar_one() == 0
    built = build(database, args.persons) if empty else 0.0
    cases: list[tuple[str, LeadFilter, str]] = [
        ("all, by score", LeadFilter(), "score"),
        ("stage lead, by score", LeadFilter(stage="lead"), "score"),
        ("stage mql, by score", LeadFilter(stage="mql"), "score"),
        ("min score 100", LeadFilter(score_min=100), "score"),
        ("team team-2, by score", LeadFilter(team="team-2"), "score"),
        ("owner rep-8", LeadFilter(owner="rep-8"), "score"),
        ("SLA breached, by deadline", LeadFilter(sla="breached"), "sla"),
        ("SLA due, by deadline", LeadFilter(sla="due"), "sla"),
        ("all, latest change", LeadFilter(), "changed"),
    ]
    rows: list[dict[str, Any]] = []
    with database.read() as connection:
        for name, filters, sort in cases:
            for counted in (False, True):
                wall, cpu = timed(
                    lambda f=filters, s=sort, c=counted: query_leads(
                        connection, f, now=NOW, sort=s, limit=50, count=c
                    )
                )
                rows.append(
                    {
                        "query": f"query_leads: {name}" + (" + count" if counted else ""),
                        "wall ms": wall,
                        "cpu ms": cpu,
                    }
                )
        for name, stage in (("GET /v1/persons", None), ("GET /v1/persons?stage=mql", "mql")):
            wall, cpu = timed(
                lambda s=stage: list_page(
                    connection, LeadFilter(stage=s), after=None, limit=100, now=NOW
                )
            )
            rows.append({"query": f"list_page: {name}", "wall ms": wall, "cpu ms": cpu})
    database.dispose()
    report(
        "lead_list",
        rows,
        notes=f"{args.persons:,} persons in {path} (built in {built:.1f} s); first page of 50 "
        "(list_page: 100); median of 5 runs; target < 300 ms",
    )


if __name__ == "__main__":
    main()

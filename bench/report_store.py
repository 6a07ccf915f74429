"""`mql report funnel` on a real store (SQLite) of 1,000,000 persons / 20,000,000 events.

The store is built through its own schema with bulk SQL (one ``INSERT … SELECT`` over a
recursive counter per table, run inside SQLite: persons, their stage history with MQL
entries and outcomes, and events), then:

1. the columnar copy is built once (``mql db columnar``, a subprocess);
2. ``mql report funnel`` runs from a cold process (subprocess), three times: wall time and
   the child's CPU time;
3. 1,000 new events arrive through the pipeline (new visitors and known persons), and the
   incremental refresh (``mql db columnar``) is timed, then the report again.

    python -m bench.report_store [--persons 1000000] [--events 20000000]

The machine is shared: compare CPU seconds next to wall seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import report

NOW = datetime(2026, 11, 20, tzinfo=UTC)
START = "2025-11-20 00:00:00"
CHANNELS = ("organic_search", "paid_search", "paid_social", "email", "events", "referral")


def _counter(n: int) -> str:
    return f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n})"


def build(path: Path, persons: int, events: int) -> dict[str, float]:
    """Create the schema (``mql db upgrade``) and fill it with bulk SQL."""
    subprocess.run(
        [sys.executable, "-m", "mqlengine", "--database", f"sqlite:///{path}", "db", "upgrade"],
        check=True,
        capture_output=True,
    )
    timings: dict[str, float] = {}
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")
    channels = (
        "CASE i % "
        + str(len(CHANNELS))
        + " "
        + " ".join(f"WHEN {k} THEN '{c}'" for k, c in enumerate(CHANNELS))
        + " END"
    )
    ts = f"datetime('{START}', '+' || (abs(random()) % (365 * 86400)) || ' seconds')"

    def step(name: str, sql: str) -> None:
        began = time.perf_counter()
        con.execute(sql)
        con.commit()
        timings[name] = time.perf_counter() - began

    step(
        "persons",
        f"""INSERT INTO persons (id, traits, profile, flags, email, channel, source, campaign,
            first_seen_at, last_seen_at, stage, stage_changed_at, mql_type, fit_score,
            intent_score, total_score, row_version, created_at, updated_at)
        {_counter(persons)}
        SELECT i, '{{}}', '{{"title": "CTO"}}', '[]', 'p' || i || '@example.com',
               {channels},
               'source-' || (i % 12), 'campaign-' || (i % 40), t, t,
               CASE WHEN i % 4 = 0 THEN 'mql' ELSE 'lead' END, t,
               CASE WHEN i % 4 = 0 THEN 'engagement' END, 10, 20, 30, 1, t, t
        FROM (SELECT i, {ts} AS t FROM n)""",
    )
    step(
        "stage_history",
        """INSERT INTO stage_history (person_id, from_stage, to_stage, changed_at, reason, actor,
            action, definition_version, mql_type, reactivated, recorded_at)
        SELECT id, NULL, 'lead', first_seen_at, 'created', 'system', NULL, NULL, NULL, 0,
               first_seen_at FROM persons
        UNION ALL
        SELECT id, 'lead', 'mql', datetime(first_seen_at, '+2 days'), 'qualified', 'system',
               NULL, 'v1', 'engagement', 0, first_seen_at FROM persons WHERE stage = 'mql'
        UNION ALL
        SELECT id, 'mql', 'sal', datetime(first_seen_at, '+3 days'), 'accept', 'rep-ann',
               'accept', NULL, NULL, 0, first_seen_at FROM persons
        WHERE stage = 'mql' AND id % 8 = 0""",
    )
    step(
        "events",
        f"""INSERT INTO events (message_id, person_id, type, name, properties, context,
            timestamp, received_at, consent_withdrawn)
        {_counter(events)}
        SELECT 'e-' || i, 1 + abs(random()) % {persons}, 'track',
               CASE i % 4 WHEN 0 THEN 'Page Viewed' WHEN 1 THEN 'Email Link Clicked'
                   WHEN 2 THEN 'Webinar Attended' ELSE 'Demo Requested' END,
               '{{"path": "/pricing"}}', '{{}}', t, t, 0
        FROM (SELECT i, {ts} AS t FROM n)""",
    )
    con.close()
    return timings


def cli(path: Path, *args: str) -> tuple[float, float, str]:
    """Run ``mql … args`` in a fresh process: wall seconds, the child's CPU seconds, stdout."""
    env = {**os.environ, "MQL_CLOCK": NOW.isoformat()}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "mqlengine", "--database", f"sqlite:///{path}", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"mql {' '.join(args)} failed: {done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout


def new_events(path: Path, count: int) -> None:
    """``count`` events through the pipeline: a quarter from new visitors, the rest from
    persons the store knows (by their e-mail)."""
    from mqlengine.facade import open as open_engine

    messages: list[dict[str, Any]] = []
    for i in range(count):
        moment = (NOW - timedelta(minutes=count - i)).isoformat()
        body: dict[str, Any] = {
            "type": "track",
            "messageId": f"bench-new-{i}",
            "event": "Pricing Page Viewed",
            "timestamp": moment,
        }
        if i % 4 == 0:
            body["anonymousId"] = f"bench-visitor-{i}"
        else:
            body["userId"] = f"bench-user-{i % 300}"
            body["anonymousId"] = f"bench-user-anon-{i % 300}"
        messages.append(body)
    with open_engine(f"sqlite:///{path}", clock=lambda: NOW) as engine:
        if engine.wiring.definition_or_none() is None:
            engine.wiring.use_template()  # the example definition, stored as a version
        for start in range(0, len(messages), 250):
            engine.ingest(messages[start : start + 250])


def run(persons: int, events: int, folder: Path) -> list[dict[str, Any]]:
    path = folder / "mql.db"
    rows: list[dict[str, Any]] = []
    for name, seconds in build(path, persons, events).items():
        rows.append({"step": f"build store: {name}", "wall s": seconds, "cpu s": "", "note": ""})
    wall, cpu, out = cli(path, "db", "columnar", "--json")
    rows.append(
        {"step": "columnar copy: first build", "wall s": wall, "cpu s": cpu, "note": out.strip()}
    )
    for attempt in range(3):
        wall, cpu, _ = cli(path, "report", "funnel", "--format", "json")
        rows.append(
            {
                "step": f"mql report funnel, cold process #{attempt + 1}",
                "wall s": wall,
                "cpu s": cpu,
                "note": "target < 1 s",
            }
        )
    began = time.perf_counter()
    new_events(path, 1_000)
    rows.append(
        {
            "step": "1,000 new events (pipeline)",
            "wall s": time.perf_counter() - began,
            "cpu s": "",
            "note": "",
        }
    )
    wall, cpu, out = cli(path, "db", "columnar", "--json")
    stats = json.loads(out)
    rows.append(
        {
            "step": "incremental refresh after 1,000 events",
            "wall s": wall,
            "cpu s": cpu,
            "note": f"refresh itself {stats['seconds']:.2f} s, {stats['dirty_persons']} persons",
        }
    )
    wall, cpu, _ = cli(path, "report", "funnel", "--format", "json")
    rows.append({"step": "mql report funnel after them", "wall s": wall, "cpu s": cpu, "note": ""})
    size = sum(p.stat().st_size for p in folder.glob("mql.columnar.duckdb*"))
    rows.append({"step": "columnar copy size (MB)", "wall s": size / 1e6, "cpu s": "", "note": ""})
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=20_000_000)
    parser.add_argument("--folder", type=Path, default=None, help="keep the store here")
    args = parser.parse_args(argv or [])
    if args.folder is not None:
        args.folder.mkdir(parents=True, exist_ok=True)
        rows = run(args.persons, args.events, args.folder)
    else:
        with tempfile.TemporaryDirectory(prefix="mql-bench-") as tmp:
            rows = run(args.persons, args.events, Path(tmp))
    load = os.getloadavg()
    report(
        "report_store",
        rows,
        notes=f"{args.persons:,} persons / {args.events:,} events in SQLite; load average "
        f"{load[0]:.1f} on {os.cpu_count()} CPUs while it ran (a shared machine).",
    )


if __name__ == "__main__":
    main(sys.argv[1:])

"""Handoff cost per stage change: what routing, the SLA deadline and the outbox add to
:func:`~mqlengine.services.qualify.apply_stage_change`.

Builds a SQLite file (or $MQL_BENCH_DATABASE_URL) with the example definition's routing and
SLA, the demo's sales team, an e-mail and a webhook destination, and a busy recent past:
$MQL_BENCH_BACKGROUND persons (default 2,000) made MQL and routed over the last two days.
Then times, in transactions of $MQL_BENCH_BATCH stage changes (default 20, as the
group-committing writer makes them), $MQL_BENCH_MQLS (default 400) of each kind:

* ``new MQL, bare``: fresh MQLs, without the definition (no handoff);
* ``new MQL + handoff``: the same with outbox rows, routing, SLA deadline and assignment;
* ``left MQL``: recent MQLs whose score dropped, bare and with the handoff (the
  assignment closes).

Every timed transaction is rolled back, so each of $MQL_BENCH_REPEAT runs (default 5)
starts from the same state; the fastest run counts. Commits are not timed. The handoff's
own cost is the difference to the bare stage change.

    python -m bench handoff        MQL_BENCH_PROFILE=1 also prints a cProfile of the handoff
"""

from __future__ import annotations

import cProfile
import os
import pstats
import random
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from bench.common import report
from mqlengine.definition.compiler import load_definition
from mqlengine.demo.sales_team import setup_sales_team
from mqlengine.domain.lifecycle import Stage, StageChange, decide_on_score
from mqlengine.domain.rules import Definition
from mqlengine.domain.scoring import Event, ScoreCard, Scorer
from mqlengine.services import outbox
from mqlengine.services.qualify import apply_stage_change
from mqlengine.store.db import Database
from mqlengine.store.tables import accounts, persons
from support.paths import EXAMPLE
from support.secrets import TEST_BOX

# Tuesday 2026-11-17, 10:00 in New York: the demo team's working hours
NOW = datetime(2026, 11, 17, 15, 0, tzinfo=UTC)
BATCH = int(os.environ.get("MQL_BENCH_BATCH", "20"))
REPEAT = int(os.environ.get("MQL_BENCH_REPEAT", "5"))
COUNTRIES = ("US", "US", "US", "CA", "GB", "DE", "FR", "NL", "IE", "ES", "IT", "AU")
SIZES = (30, 80, 300, 900, 2500, 12000)


def _profile(rng: random.Random, i: int, account: int) -> dict[str, Any]:
    return {
        "email": f"p{i}@company{account}.com",
        "email_domain": f"company{account}.com",
        "first_name": f"First{i}",
        "last_name": f"Last{i}",
        "title": "VP Marketing",
        "seniority": rng.choice(("vp", "director", "head")),
        "department": "marketing",
        "company": {
            "name": f"Company {account}",
            "employees": rng.choice(SIZES),
            "industry": "software",
        },
        "country": rng.choice(COUNTRIES),
    }


def _setup(database: Database, count: int, start: datetime) -> list[dict[str, Any]]:
    """``count`` leads (three per account on average); returns their rows."""
    rng = random.Random(7)
    n_accounts = max(count // 3, 1)
    with database.begin() as c:
        c.execute(
            accounts.insert(),
            [
                {
                    "domain": f"company{a}.com",
                    "name": f"Company {a}",
                    "traits": {},
                    "created_at": start,
                    "updated_at": start,
                }
                for a in range(1, n_accounts + 1)
            ],
        )
        rows = []
        for i in range(count):
            account = rng.randint(1, n_accounts)
            profile = _profile(rng, i, account)
            rows.append(
                {
                    "account_id": account,
                    "traits": profile,
                    "profile": profile,
                    "flags": [],
                    "email": profile["email"],
                    "first_seen_at": start,
                    "last_seen_at": start,
                    "stage": Stage.LEAD.value,
                    "stage_changed_at": start,
                    "created_at": start,
                    "updated_at": start,
                }
            )
        c.execute(persons.insert(), rows)
        ids = [r.id for r in c.execute(persons.select().order_by(persons.c.id))]
        for row, pid in zip(rows, ids, strict=True):
            row["id"] = pid
        outbox.add_destination(
            c, box=TEST_BOX, name="crm", kind="webhook", url="https://crm.example/x", now=start
        )
        outbox.add_destination(
            c,
            box=TEST_BOX,
            name="sales-mail",
            kind="email",
            url="smtp://mail.example:25",
            now=start,
            topics=["mql.assigned", "sla.breached"],
            email_to=["owner", "manager"],
        )
    return rows


def _qualify(scorer: Scorer, row: dict[str, Any], at: datetime) -> tuple[ScoreCard, StageChange]:
    card = scorer.score(row["profile"], [Event(f"demo-{row['id']}", "Demo Requested", at, {})], at)
    change = decide_on_score(Stage.LEAD, card, at)
    assert change is not None and change.to_stage is Stage.MQL, card
    return card, change


Work = tuple[int, StageChange, ScoreCard]


def _run(
    database: Database,
    definition: Definition | None,
    work: Sequence[Work],
    *,
    commit: bool,
    profiler: cProfile.Profile | None = None,
) -> float:
    """Seconds spent in apply_stage_change (commits not counted)."""
    spent = 0.0
    for i in range(0, len(work), BATCH):
        with database.engine.connect() as c:
            transaction = c.begin()
            started = time.perf_counter()
            if profiler is not None:
                profiler.enable()
            for pid, change, card in work[i : i + BATCH]:
                assert apply_stage_change(
                    c, pid, change, recorded_at=change.at, card=card, definition=definition
                )
            if profiler is not None:
                profiler.disable()
            spent += time.perf_counter() - started
            if commit:
                transaction.commit()
            else:
                transaction.rollback()
    return spent


def _best(run: Callable[[], float]) -> float:
    """The fastest of REPEAT runs (each rolled back, so each starts from the same state):
    the machine may be shared, and interference only ever adds time."""
    return min(run() for _ in range(REPEAT))


def _row(phase: str, changes: int, seconds: float, base: float | None) -> dict[str, Any]:
    per = seconds / changes * 1000
    return {
        "phase": phase,
        "changes": changes,
        "seconds": seconds,
        "ms/change": per,
        "handoff ms/change": per - base if base is not None else 0.0,
    }


def main() -> None:
    background = int(os.environ.get("MQL_BENCH_BACKGROUND", "2000"))
    measured = int(os.environ.get("MQL_BENCH_MQLS", "400"))
    profile = os.environ.get("MQL_BENCH_PROFILE") == "1"
    definition = load_definition(EXAMPLE).definition
    assert definition.routing is not None and definition.sla is not None
    scorer = Scorer(definition)
    start = NOW - timedelta(days=2)
    with tempfile.TemporaryDirectory() as tmp:
        url = os.environ.get("MQL_BENCH_DATABASE_URL") or f"sqlite:///{Path(tmp) / 'bench.db'}"
        database = Database(url)
        database.migrate()
        setup_sales_team(SimpleNamespace(db=database), now=start, start=start)
        rows = _setup(database, background + measured, start)
        history, fresh = rows[:background], rows[background:]
        # the recent past: MQLs spread over the last two days, routed as they came
        step = (NOW - start - timedelta(minutes=5)) / max(background, 1)
        past: list[Work] = []
        for n, row in enumerate(history):
            card, change = _qualify(scorer, row, start + step * n)
            past.append((row["id"], change, card))
        started = time.perf_counter()
        _run(database, definition, past, commit=True)
        setup_seconds = time.perf_counter() - started

        at = NOW
        new: list[Work] = []
        for n, row in enumerate(fresh):
            card, change = _qualify(scorer, row, at + timedelta(seconds=n))
            new.append((row["id"], change, card))
        bare = _best(lambda: _run(database, None, new, commit=False))
        handoff = _best(lambda: _run(database, definition, new, commit=False))
        profiler = None
        if profile:
            profiler = cProfile.Profile()
            _run(database, definition, new, commit=False, profiler=profiler)

        # leaving MQL: the most recent background MQLs' scores drop
        leave: list[Work] = []
        for pid, _change, card in past[-measured:]:
            drop = StageChange(
                Stage.MQL, Stage.LEAD, at, "score_below_hysteresis", "system", definition.version
            )
            leave.append((pid, drop, card))
        leave_bare = _best(lambda: _run(database, None, leave, commit=False))
        leave_handoff = _best(lambda: _run(database, definition, leave, commit=False))
        base = bare / len(new) * 1000
        leave_base = leave_bare / len(leave) * 1000
        rows_out = [
            _row("new MQL, bare", len(new), bare, None),
            _row("new MQL + handoff", len(new), handoff, base),
            _row("left MQL, bare", len(leave), leave_bare, None),
            _row("left MQL + handoff", len(leave), leave_handoff, leave_base),
        ]
        report(
            "handoff",
            rows_out,
            notes=(
                f"{background:,} MQLs routed over the two days before (setup "
                f"{setup_seconds:.1f} s, {setup_seconds / max(background, 1) * 1000:.2f} ms "
                f"each); transactions of {BATCH}; database {database.dialect}"
            ),
        )
        if profiler is not None:
            _print_profile(profiler)
        database.dispose()


def _print_profile(profiler: cProfile.Profile, sort: str = "cumulative") -> None:
    stats = pstats.Stats(profiler)
    stats.sort_stats(sort).print_stats(45)


if __name__ == "__main__":
    main()

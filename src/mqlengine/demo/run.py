"""`mql demo`: a synthetic B2B history through the real pipeline, day by day.

Each simulated day is ingested as one batch (qualification on arrival, scored as of each
person's newest event), sales act on new MQLs as the generated plans say (through the same
feedback service the API uses), and a weekly full rescore lets decay demote stale MQLs.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import MetaData, func, select

from mqlengine.batch.rescore import rescore_all
from mqlengine.definition.compiler import LoadedDefinition
from mqlengine.demo.generator import DemoDataset, SalesStep, generate
from mqlengine.demo.sales_team import check_sla, setup_sales_team
from mqlengine.domain.lifecycle import Stage
from mqlengine.domain.scoring import Event
from mqlengine.errors import ConflictError, MqlError
from mqlengine.ingest.messages import parse_time
from mqlengine.ingest.qualify import EventCache, scorer_for
from mqlengine.ingest.writerstate import DEFAULT_MAX_BYTES, WriterState
from mqlengine.services.feedback import apply_feedback
from mqlengine.store import repo
from mqlengine.store.db import Database
from mqlengine.store.tables import identities, persons, stage_history
from mqlengine.store.tables_handoff import assignments, reps
from mqlengine.wiring import Wiring

Progress = Callable[[str, int, int], None]
DEMO_MARKER = "demo"
# what the replay's writer remembers between its days (as the API's writer: its default)
WRITER_MEMORY_BYTES = DEFAULT_MAX_BYTES


@dataclass
class DemoReport:
    persons: int = 0
    messages: int = 0
    mqls: int = 0
    feedback: int = 0
    breaches: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


def reset_database(engine: Wiring) -> None:
    """Drop every table (the demo owns this database) and migrate again."""
    reflected = MetaData()
    with engine.db.begin() as connection:
        reflected.reflect(connection)
        reflected.drop_all(connection)
    engine.db.migrate()


def database_is_empty(engine: Wiring) -> bool:
    with engine.db.read() as connection:
        return repo.count(connection, persons) == 0


def is_demo_database(database: Database) -> bool:
    """Whether this database holds a previous demo (its sales team's feedback)."""
    with database.read() as connection:
        row = connection.execute(
            select(stage_history.c.id).where(stage_history.c.actor == "demo-sales").limit(1)
        ).first()
    return row is not None


def first_assignments(database: Database) -> list[tuple[str | None, str, int]]:
    """(rep or None for a queue, team, MQLs) of every MQL's first assignment, most first."""
    with database.read() as connection:
        rows = connection.execute(
            select(reps.c.name, assignments.c.team, func.count().label("n"))
            .select_from(assignments.outerjoin(reps, reps.c.id == assignments.c.rep_id))
            .where(assignments.c.seq == 0)
            .group_by(reps.c.name, assignments.c.team)
            .order_by(func.count().desc())
        ).all()
    return [(name, team, int(n)) for name, team, n in rows]


def _user_ids(engine: Wiring, person_ids: list[int]) -> dict[int, str]:
    found: dict[int, str] = {}
    with engine.db.read() as connection:
        for part in repo.chunks(person_ids):
            rows = connection.execute(
                select(identities.c.person_id, identities.c.value).where(
                    identities.c.person_id.in_(part), identities.c.kind == "user_id"
                )
            )
            for row in rows:
                found.setdefault(row.person_id, row.value)
    return found


def run_demo(
    engine: Wiring,
    *,
    now: datetime,
    persons_count: int = 5000,
    days: int = 180,
    seed: int = 7,
    progress: Progress | None = None,
    dataset: DemoDataset | None = None,
    loaded: LoadedDefinition | None = None,
) -> DemoReport:
    """Replay the demo's (or ``dataset``'s) history day by day under the example
    definition, or ``loaded`` when given."""
    import time

    report = DemoReport()
    started = time.perf_counter()
    data = dataset or generate(now=now, seed=seed, persons=persons_count, days=days)
    report.seconds["generate"] = time.perf_counter() - started
    report.messages = data.message_count
    if loaded is None:
        loaded = engine.use_template()
    else:
        engine.register(loaded)
    definition = loaded.definition
    setup_sales_team(engine, now=now, start=now - timedelta(days=days))
    scorer = scorer_for(definition)
    # the scorer's memo of matched rules is bounded with the memory (it holds every event
    # id scored, millions at 50,000 persons)
    memory = WriterState(scorer.relevant, max_bytes=WRITER_MEMORY_BYTES, matches=scorer)
    pipeline = engine.pipeline(definition, memory=memory)
    borrowed = _Borrowed(memory.events)

    start = now - timedelta(days=days)
    by_day, last_day = _days(data, start)
    upcoming = next(by_day, None)

    queue: list[tuple[datetime, int, int, int]] = []  # (due, seq, person_id, step index)
    plans: dict[int, tuple[SalesStep, ...]] = {}
    sequence = 0
    step_started = time.perf_counter()
    total_days = last_day + 1
    for day in range(total_days):
        day_end = start + timedelta(days=day + 1)
        batch: list[dict[str, Any]] = []
        if upcoming is not None and upcoming[0] == day:
            batch = upcoming[1]
            upcoming = next(by_day, None)
        new_mqls: list[tuple[int, datetime]] = []
        if batch:
            with engine.db.begin() as connection:
                result = pipeline.ingest(connection, batch, now=now, score_as_of="event")
            for person_id, change in result.stage_changes:
                if change.to_stage is Stage.MQL:
                    new_mqls.append((person_id, change.at))
        moved: set[int] = set()  # persons the sales steps and the nightly rescore write
        if day % 7 == 6:
            # the nightly job: decay may drop MQLs below the hysteresis band
            moved |= _in_stage(engine, Stage.MQL)
            weekly = rescore_all(
                engine.db,
                definition,
                now=now,
                as_of=min(day_end, now),
                cache=borrowed,
                progress=borrowed.chunk_done,
                stages=("mql",),  # decay only lowers scores: only MQLs can move
            )
            report.mqls += weekly.mqls_entered
        if new_mqls:
            report.mqls += len(new_mqls)
            user_ids = _user_ids(engine, [pid for pid, _ in new_mqls])
            for person_id, at in new_mqls:
                plan = data.sales_plans.get(user_ids.get(person_id, ""))
                if not plan or person_id in plans:
                    continue
                plans[person_id] = plan
                sequence += 1
                heapq.heappush(
                    queue, (at + timedelta(hours=plan[0].after_hours), sequence, person_id, 0)
                )
        report.feedback += _apply_due(
            engine, definition, queue, plans, min(day_end, now), now, moved
        )
        report.breaches += check_sla(engine, definition, until=min(day_end, now))
        _moved(memory, moved)
        if progress:
            progress("days", day + 1, total_days)
    report.seconds["ingest"] = time.perf_counter() - step_started

    step_started = time.perf_counter()
    final = rescore_all(
        engine.db, definition, now=now, cache=borrowed, progress=borrowed.chunk_done
    )
    report.mqls += final.mqls_entered
    report.feedback += _apply_due(engine, definition, queue, plans, now, now, set())
    report.breaches += check_sla(engine, definition, until=now)
    report.seconds["rescore"] = time.perf_counter() - step_started
    report.persons = final.persons
    load_demo_spend(engine, data, now=now)
    return report


def _in_stage(engine: Wiring, stage: Stage) -> set[int]:
    with engine.db.read() as connection:
        query = select(persons.c.id).where(
            persons.c.stage == stage.value, persons.c.merged_into.is_(None)
        )
        return set(connection.execute(query).scalars())


def _moved(memory: WriterState, person_ids: set[int]) -> None:
    """The sales steps and the nightly rescore wrote these persons' rows (stage, scores,
    SLA columns) on the connection the pipeline uses, where the writer's change watch
    cannot tell on SQLite: their rows are read again. Their identities and events stay:
    neither the sales steps nor scoring change those (on PostgreSQL the watch sees the
    rows change by itself)."""
    for person_id in person_ids:
        memory.rows.pop(person_id, None)
        memory.verdicts.pop(person_id, None)


class _Borrowed(EventCache):
    """The events a whole-base rescore scores: the writer memory's where it holds the
    person, else read from the store for one chunk of persons and not kept (kept, a final
    rescore of every person would hold every relevant event of the history at once)."""

    def __init__(self, held: EventCache) -> None:
        super().__init__()
        self.held = held

    def get(self, person_id: int) -> list[Event] | None:
        found = self.held.get(person_id)
        return found if found is not None else super().get(person_id)

    def knows(self, person_id: int) -> bool:
        return self.held.knows(person_id) or super().knows(person_id)

    def chunk_done(self, _persons: int) -> None:
        self.clear()  # only what was read for the chunk; the memory's events stay


def _days(
    data: DemoDataset, start: datetime
) -> tuple[Iterator[tuple[int, list[dict[str, Any]]]], int]:
    """The messages a day at a time (a generated dataset holds only one day's as objects),
    and the last day with any."""
    if data.spooled:
        return data.days(), data.last_day
    by_day: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for message in data.messages:
        offset = (parse_time(message["timestamp"], "timestamp") - start).days
        by_day[max(offset, 0)].append(message)
    return iter(sorted(by_day.items())), max(by_day, default=-1)


def _apply_due(
    engine: Wiring,
    definition: Any,
    queue: list[tuple[datetime, int, int, int]],
    plans: dict[int, tuple[SalesStep, ...]],
    until: datetime,
    now: datetime,
    moved: set[int],
) -> int:
    """Apply the sales steps due by ``until``; adds to ``moved`` the persons they wrote."""
    applied = 0
    if not queue or queue[0][0] > until:
        return 0
    with engine.db.begin() as connection:
        while queue and queue[0][0] <= until:
            due, seq, person_id, index = heapq.heappop(queue)
            step = plans[person_id][index]
            moved.add(person_id)
            # every step, touch included (the first touch stops the SLA clock)
            try:
                apply_feedback(
                    connection,
                    definition,
                    person_id,
                    step.action,
                    actor="demo-sales",
                    at=due,
                    now=now,
                    reason=step.reason,
                    amount=step.amount,
                )
                applied += 1
            except ConflictError:
                continue  # the lead moved on (e.g. decayed back to lead): plan ends
            except MqlError:
                continue
            if index + 1 < len(plans[person_id]):
                nxt = plans[person_id][index + 1]
                heapq.heappush(
                    queue, (due + timedelta(hours=nxt.after_hours), seq, person_id, index + 1)
                )
    return applied


# --------------------------------------------------------------------------- spend (reports)


def load_demo_spend(engine: Wiring, data: DemoDataset, *, now: datetime) -> int:
    """Store the generator's spend per channel/campaign/month, so cost per MQL and CAC
    reports have numbers (same path as `mql spend import`)."""
    from mqlengine.reports.spend import load_spend_dicts

    with engine.db.begin() as connection:
        return load_spend_dicts(connection, data.spend, source="demo", now=now)

"""The ingest writer's memory between transactions (SQLite): same results as reading
everything back, and nothing stale after another writer or a failed transaction."""

from __future__ import annotations

import contextlib
import random
import re
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy import select, update

from conftest import BACKENDS
from mqlengine.domain.person import PERSON_COLUMNS
from mqlengine.domain.rules import Definition
from mqlengine.ingest.pipeline import Pipeline
from mqlengine.ingest.qualify import scorer_for
from mqlengine.ingest.writerstate import WriterState
from mqlengine.services.qualify import HANDOFF
from mqlengine.store import repo
from mqlengine.store.db import Database
from mqlengine.store.tables import events, identities, persons, score_snapshots, stage_history
from support import pg

START = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
PATHS = ["/", "/pricing", "/docs", "/blog/a", "/careers", "/pricing/enterprise"]
TRACKS = ["Demo Requested", "Trial Started", "Webinar Attended", "Content Downloaded"]
TITLES = ["VP Marketing", "CTO", "Data Analyst", "Student", "Head of Sales"]
DOMAINS = ["northwind.io", "globex.com", "gmail.com", "initech.io"]


def _copy(template: Path, path: Path) -> Database:
    with (
        contextlib.closing(sqlite3.connect(template)) as source,
        contextlib.closing(sqlite3.connect(path)) as target,
    ):
        source.backup(target)
    return Database(f"sqlite:///{path}")


@pytest.fixture(params=BACKENDS)
def databases(request: pytest.FixtureRequest, _sqlite_template: Path, tmp_path: Path) -> Any:
    """Two migrated databases of one kind: one for a remembering writer, one for a
    writer that reads everything back."""
    if request.param == "sqlite":
        first = _copy(_sqlite_template, tmp_path / "state.db")
        second = _copy(_sqlite_template, tmp_path / "plain.db")
        yield first, second
        first.dispose()
        second.dispose()
        return
    admin: str = request.getfixturevalue("postgres_url")
    template: str = request.getfixturevalue("_postgres_template")
    urls = [pg.create_database(admin, template=template) for _ in range(2)]
    first, second = Database(urls[0]), Database(urls[1])
    yield first, second
    first.dispose()
    second.dispose()
    for url in urls:
        pg.drop_database(admin, url)


@pytest.fixture(params=BACKENDS)
def db_any(request: pytest.FixtureRequest, _sqlite_template: Path, tmp_path: Path) -> Any:
    if request.param == "sqlite":
        database = _copy(_sqlite_template, tmp_path / "mql.db")
        yield database
        database.dispose()
        return
    admin: str = request.getfixturevalue("postgres_url")
    url = pg.create_database(admin, template=request.getfixturevalue("_postgres_template"))
    database = Database(url)
    yield database
    database.dispose()
    pg.drop_database(admin, url)


def _message(rng: random.Random, number: int, moment: datetime) -> dict[str, Any]:
    visitor = rng.randrange(40)
    base: dict[str, Any] = {
        "messageId": f"m-{number}",
        "anonymousId": f"anon-{visitor}",
        "timestamp": moment.isoformat(),
    }
    roll = rng.random()
    if roll < 0.45:
        path = rng.choice(PATHS)
        base.update(type="page", properties={"path": path})
    elif roll < 0.75:
        base.update(type="track", event=rng.choice(TRACKS), properties={})
    elif roll < 0.9:
        # e-mails are shared between visitors now and then: the persons are merged
        person = visitor // 2 if rng.random() < 0.5 else visitor
        base.update(
            type="identify",
            userId=f"user-{person}" if rng.random() < 0.6 else None,
            traits={
                "email": f"p{person}@{DOMAINS[person % len(DOMAINS)]}",
                "title": rng.choice(TITLES),
                "company": {"employees": rng.choice([20, 450, 5000]), "industry": "software"},
                "country": rng.choice(["US", "DE", "FR"]),
            },
        )
    elif roll < 0.95:
        base.update(type="alias", userId=f"user-{visitor // 3}", previousId=f"anon-{visitor}")
        base.pop("anonymousId")
    else:
        base.update(
            type="group",
            groupId=f"g-{visitor % 5}",
            traits={"name": f"Group {visitor % 5}", "employees": 900, "industry": "software"},
        )
    if base.get("userId") is None:
        base.pop("userId", None)
    return base


def _snapshot(database: Database) -> dict[str, Any]:
    with database.read() as connection:
        return {
            "persons": [
                tuple(row)
                for row in connection.execute(
                    select(
                        persons.c.id,
                        persons.c.stage,
                        persons.c.fit_score,
                        persons.c.intent_score,
                        persons.c.total_score,
                        persons.c.scored_at,
                        persons.c.traits,
                        persons.c.profile,
                        persons.c.flags,
                        persons.c.email,
                        persons.c.account_id,
                        persons.c.last_seen_at,
                        persons.c.merged_into,
                        persons.c.mql_type,
                    ).order_by(persons.c.id)
                )
            ],
            "identities": sorted(
                tuple(r)
                for r in connection.execute(
                    select(identities.c.kind, identities.c.value, identities.c.person_id)
                )
            ),
            "events": sorted(
                tuple(r)
                for r in connection.execute(select(events.c.message_id, events.c.person_id))
            ),
            "history": [
                tuple(r)
                for r in connection.execute(
                    select(
                        stage_history.c.person_id,
                        stage_history.c.from_stage,
                        stage_history.c.to_stage,
                        stage_history.c.reason,
                    ).order_by(stage_history.c.id)
                )
            ],
            "snapshots": [
                tuple(r)
                for r in connection.execute(
                    select(score_snapshots.c.person_id, score_snapshots.c.total).order_by(
                        score_snapshots.c.id
                    )
                )
            ],
        }


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_remembering_gives_the_same_results_as_reading_back(
    databases: tuple[Database, Database], definition: Definition, seed: int
) -> None:
    remembering, reading = databases
    state = WriterState(scorer_for(definition).relevant)
    with_state = Pipeline(definition, handoff=HANDOFF, memory=state)
    without = Pipeline(definition, handoff=HANDOFF)
    rng = random.Random(seed)
    number = 0
    with (
        remembering.engine.connect() as writer,
        reading.engine.connect() as plain,
    ):
        for batch in range(40):
            now = START + timedelta(hours=6 * batch)
            messages = []
            for _ in range(rng.randrange(1, 30)):
                number += 1
                moment = now - timedelta(minutes=rng.randrange(600))
                messages.append(_message(rng, number, moment))
            if batch % 7 == 3:
                messages.extend(messages[:3])  # redeliveries
            with with_state.transaction(writer):
                first = with_state.ingest(writer, messages, now=now)
            with without.transaction(plain):
                second = without.ingest(plain, messages, now=now)
            assert first.merges == second.merges
            assert first.stage_changes == second.stage_changes
    assert first.merges or any(r[12] for r in _snapshot(reading)["persons"])  # merges happened
    remembered, read = _snapshot(remembering), _snapshot(reading)
    for table in read:
        assert remembered[table] == read[table], table
    assert state.rows and state.owner  # it did remember
    assert state.stats["foreign_writes"] == 0


def test_a_write_by_another_connection_is_noticed(db_any: Database, definition: Definition) -> None:
    state = WriterState(scorer_for(definition).relevant)
    pipeline = Pipeline(definition, handoff=HANDOFF, memory=state)
    other = Pipeline(definition, handoff=HANDOFF)
    page = {"type": "page", "anonymousId": "anon-1", "properties": {"path": "/pricing"}}
    with db_any.engine.connect() as writer:
        with pipeline.transaction(writer):
            (first,) = pipeline.ingest(
                writer, [{**page, "messageId": "m1", "timestamp": START.isoformat()}], now=START
            ).persons
        # Another process takes the visitor over: anon-1 now belongs to a new person.
        with db_any.begin() as connection:
            (second,) = other.ingest(
                connection,
                [{**page, "anonymousId": "anon-2", "messageId": "m2"}],
                now=START,
            ).persons
            connection.execute(
                update(identities)
                .where(identities.c.kind == "anonymous_id", identities.c.value == "anon-1")
                .values(person_id=second)
            )
        with pipeline.transaction(writer):
            result = pipeline.ingest(
                writer, [{**page, "messageId": "m3", "timestamp": START.isoformat()}], now=START
            )
    assert first != second
    assert result.persons == {second}
    if db_any.is_sqlite:
        assert state.stats["foreign_writes"] == 1  # the whole memory
    else:
        assert state.stats == {**state.stats, "foreign_writes": 0, "stale_persons": 1}


def test_a_failed_transaction_is_forgotten(db_sqlite: Database, definition: Definition) -> None:
    state = WriterState(scorer_for(definition).relevant)
    pipeline = Pipeline(definition, handoff=HANDOFF, memory=state)
    message = {
        "type": "track",
        "event": "Demo Requested",
        "anonymousId": "anon-5",
        "messageId": "m5",
        "timestamp": START.isoformat(),
    }
    with db_sqlite.engine.connect() as writer:
        with pytest.raises(RuntimeError), pipeline.transaction(writer):
            pipeline.ingest(writer, [message], now=START)
            raise RuntimeError("the commit fails")
        assert not state.owner and not state.rows
        with pipeline.transaction(writer):
            result = pipeline.ingest(writer, [message], now=START)
        assert result.accepted == 1
    with db_sqlite.read() as connection:
        stored = connection.execute(select(events.c.person_id)).scalars().all()
        owners = connection.execute(select(persons.c.id)).scalars().all()
    assert stored == list(result.persons) == owners


def test_writes_that_do_not_touch_what_is_remembered_keep_it(
    db_sqlite: Database, definition: Definition
) -> None:
    """The worker marking notifications delivered, a rep's new lead: the memory stays."""
    state = WriterState(scorer_for(definition).relevant)
    pipeline = Pipeline(definition, handoff=HANDOFF, memory=state)
    page = {"type": "page", "anonymousId": "anon-1", "properties": {"path": "/pricing"}}
    with db_sqlite.engine.connect() as writer:
        with pipeline.transaction(writer):
            (person,) = pipeline.ingest(
                writer, [{**page, "messageId": "m1", "timestamp": START.isoformat()}], now=START
            ).persons
        with db_sqlite.begin() as connection:  # not a remembered column
            connection.execute(
                update(persons).where(persons.c.id == person).values(owner_team="emea")
            )
        with pipeline.transaction(writer):
            pipeline.ingest(
                writer, [{**page, "messageId": "m2", "timestamp": START.isoformat()}], now=START
            )
        assert state.stats["resets"] == state.stats["foreign_writes"] == 0
        assert state.stats["other_writes"] == 1
        assert person in state.rows
        with db_sqlite.begin() as connection:  # a remembered column: forget
            connection.execute(update(persons).where(persons.c.id == person).values(stage="sal"))
        with pipeline.transaction(writer):
            result = pipeline.ingest(
                writer, [{**page, "messageId": "m3", "timestamp": START.isoformat()}], now=START
            )
        assert state.stats["foreign_writes"] == 1
        assert not result.stage_changes  # sales own the lead now: scoring does not move it


@pytest.mark.parametrize(
    "change",
    [
        "UPDATE persons SET traits = '{}'",
        "UPDATE persons SET merged_into = NULL",
        "INSERT INTO identities (person_id, kind, value, created_at) "
        "VALUES (1, 'email', 'x@y.io', '2026-11-01 00:00:00.000000')",
        "DELETE FROM identities WHERE kind = 'anonymous_id'",
        "UPDATE events SET person_id = person_id",
        "INSERT INTO accounts (domain, name, traits, created_at, updated_at) "
        "VALUES ('z.io', 'Z', '{}', '2026-11-01 00:00:00.000000', '2026-11-01 00:00:00.000000')",
    ],
)
def test_every_change_to_remembered_rows_moves_the_counter(
    db_sqlite: Database, definition: Definition, change: str
) -> None:
    with db_sqlite.begin() as connection:
        Pipeline(definition, handoff=HANDOFF).ingest(
            connection,
            [{"type": "page", "anonymousId": "anon-1", "messageId": "m1", "properties": {}}],
            now=START,
        )
    with db_sqlite.begin() as connection:
        before = connection.exec_driver_sql("SELECT value FROM ingest_epoch").scalar_one()
        connection.exec_driver_sql(change)
        after = connection.exec_driver_sql("SELECT value FROM ingest_epoch").scalar_one()
    assert after > before


def _page(visitor: int, number: int) -> dict[str, Any]:
    return {
        "type": "page",
        "anonymousId": f"anon-{visitor}",
        "messageId": f"m{number}",
        "properties": {"path": "/pricing"},
        "timestamp": START.isoformat(),
    }


def test_past_its_bound_the_memory_forgets_the_persons_written_longest_ago(
    db_sqlite: Database, definition: Definition
) -> None:
    probe = WriterState(scorer_for(definition).relevant)
    with db_sqlite.engine.connect() as writer:
        pipeline = Pipeline(definition, handoff=HANDOFF, memory=probe)
        with pipeline.transaction(writer):
            (one,) = pipeline.ingest(writer, [_page(100, 100)], now=START).persons
        size = probe.size_of(one)
        # room for three persons and the one verdict their (equal, empty) profiles share
        bound = 3 * size + probe.judged.bytes
        state = WriterState(scorer_for(definition).relevant, max_bytes=bound)
        pipeline = Pipeline(definition, handoff=HANDOFF, memory=state)
        order: list[int] = []
        for visitor in range(6):
            with pipeline.transaction(writer):
                order += pipeline.ingest(writer, [_page(visitor, visitor)], now=START).persons
            assert state.bytes <= 4 * size  # within the bound at each start, plus one batch
        with pipeline.transaction(writer):
            again = pipeline.ingest(writer, [_page(0, 10)], now=START)  # forgotten: read back
    # each transaction starts within the bound: three persons, then the new one
    assert state.stats["evicted"] == 3 and state.stats["resets"] == 0
    assert set(state.rows) == {order[3], order[4], order[5], *again.persons}
    assert again.persons == {order[0]}
    assert state.bytes == sum(state.size_of(pid) for pid in state.rows)


@pytest.mark.parametrize("seed", [21, 22])
def test_a_tiny_bound_decides_exactly_as_a_large_one(
    databases: tuple[Database, Database], definition: Definition, seed: int
) -> None:
    """The memory is a cache: forgetting persons (and the scorer's memo) only makes the
    next batch read them back. A writer that can hold about two persons and one that holds
    everything take the same batches (merges, groups, redeliveries, stage changes) and
    leave the same rows."""
    tiny_db, large_db = databases
    scorer = scorer_for(definition)
    tiny = WriterState(scorer.relevant, max_bytes=5_000, matches=scorer)
    large = WriterState(scorer.relevant, max_bytes=2**30, matches=scorer)
    pipelines = [
        Pipeline(definition, handoff=HANDOFF, memory=tiny),
        Pipeline(definition, handoff=HANDOFF, memory=large),
    ]
    rng = random.Random(seed)
    number = 0
    with tiny_db.engine.connect() as one, large_db.engine.connect() as two:
        for batch in range(40):
            now = START + timedelta(hours=6 * batch)
            messages = []
            for _ in range(rng.randrange(1, 30)):
                number += 1
                moment = now - timedelta(minutes=rng.randrange(600))
                messages.append(_message(rng, number, moment))
            if batch % 7 == 3:
                messages.extend(messages[:3])  # redeliveries
            results = []
            for pipeline, connection in zip(pipelines, (one, two), strict=True):
                with pipeline.transaction(connection):
                    results.append(pipeline.ingest(connection, messages, now=now))
            first, second = results
            assert first.merges == second.merges
            assert first.stage_changes == second.stage_changes
            assert first.outcomes == second.outcomes  # the score cards too
    small, big = _snapshot(tiny_db), _snapshot(large_db)
    for table in big:
        assert small[table] == big[table], table
    assert tiny.stats["evicted"] > 20 and tiny.stats["memo_clears"] > 0
    assert large.stats["evicted"] == 0 and len(large.rows) > len(tiny.rows)


def test_release_forgets_everything_and_the_next_batch_reads_it_back(
    db_sqlite: Database, definition: Definition
) -> None:
    scorer = scorer_for(definition)
    state = WriterState(scorer.relevant, matches=scorer)
    pipeline = Pipeline(definition, handoff=HANDOFF, memory=state)
    with db_sqlite.engine.connect() as writer:
        with pipeline.transaction(writer):
            first = pipeline.ingest(writer, [_page(v, v) for v in range(3)], now=START)
        assert len(state.rows) == 3 and state.bytes > 0 and scorer.memo_size() > 0
        state.release()
        assert not state.rows and not state.owner and not len(state.events)
        assert state.bytes == 0 and scorer.memo_size() == 0
        with pipeline.transaction(writer):
            again = pipeline.ingest(writer, [_page(0, 10)], now=START)
    assert again.persons == {min(first.persons)}
    assert set(state.rows) == again.persons


def test_the_api_writer_memory_gets_the_bound(tmp_path: Path) -> None:
    from mqlengine.settings import Settings
    from mqlengine.wiring import Wiring
    from support.paths import EXAMPLE

    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/mql.db", definition_path=EXAMPLE, writer_memory_mb=3
    )
    wiring = Wiring(settings)
    try:
        wiring.db.migrate()
        memory = wiring.pipeline_source()().memory
        assert memory is not None and memory.max_bytes == 3 * 2**20
        assert memory.matches is wiring.pipeline_source()().context.scorer
    finally:
        wiring.close()


@pytest.fixture
def db_sqlite(_sqlite_template: Path, tmp_path: Path) -> Any:
    database = _copy(_sqlite_template, tmp_path / "mql.db")
    yield database
    database.dispose()


def test_the_epoch_triggers_cover_every_remembered_person_column(
    db_sqlite: Database,
) -> None:
    """A column added to what the writer remembers needs a migration that adds it to
    the trigger; without one, another connection's change to it would go unnoticed."""
    with db_sqlite.read() as connection:
        triggers = dict(
            connection.exec_driver_sql(
                "SELECT name, sql FROM sqlite_master WHERE type = 'trigger'"
            ).all()
        )
    update_sql = triggers["trg_epoch_persons_update"]
    found = re.search(r"AFTER UPDATE OF (.+?) ON persons", update_sql, re.IGNORECASE)
    assert found is not None, update_sql
    covered = {name.strip() for name in found.group(1).split(",")}
    assert set(PERSON_COLUMNS) - {"id"} <= covered
    for table in ("persons", "identities", "events", "accounts"):
        for action in ("insert", "update", "delete"):
            assert f"trg_epoch_{table}_{action}" in triggers


@pytest.mark.parametrize("late_claim", [False, True], ids=["claim-first", "claim-late"])
def test_two_remembering_writers_on_postgresql_agree_with_one_that_reads(
    postgres_url: str, _postgres_template: str, definition: Definition, late_claim: bool
) -> None:
    """Two writers with their own memory (two server processes) take turns on one
    database; a third database gets every batch through a writer that reads everything
    back. Each writer must notice the persons the other changed: the outcome per visitor
    is the same — whether a writer locks its persons when it checks them or (the API's
    writer) once its events are stored."""
    urls = [pg.create_database(postgres_url, template=_postgres_template) for _ in range(2)]
    shared, reference = Database(urls[0]), Database(urls[1])
    try:
        writers = [
            Pipeline(
                definition,
                handoff=HANDOFF,
                memory=WriterState(scorer_for(definition).relevant, late_claim=late_claim),
            )
            for _ in range(2)
        ]
        plain = Pipeline(definition, handoff=HANDOFF)
        rng = random.Random(5)
        number = 0
        with (
            shared.engine.connect() as one,
            shared.engine.connect() as two,
            reference.engine.connect() as ref,
        ):
            connections = [one, two]
            for batch in range(50):
                now = START + timedelta(hours=6 * batch)
                messages = []
                for _ in range(rng.randrange(1, 25)):
                    number += 1
                    moment = now - timedelta(minutes=rng.randrange(600))
                    messages.append(_message(rng, number, moment))
                turn = rng.randrange(2)
                with writers[turn].transaction(connections[turn]):
                    writers[turn].ingest(connections[turn], messages, now=now)
                with plain.transaction(ref):
                    plain.ingest(ref, messages, now=now)
        assert _by_visitor(shared) == _by_visitor(reference)
        stale = sum(w.memory.stats["stale_persons"] for w in writers if w.memory is not None)
        assert stale > 0  # each did see the other's changes
    finally:
        shared.dispose()
        reference.dispose()
        for url in urls:
            pg.drop_database(postgres_url, url)


def _visit(number: int, moment: datetime, **fields: Any) -> dict[str, Any]:
    return {
        "messageId": f"v-{number}",
        "anonymousId": "anon-1",
        "timestamp": moment.isoformat(),
    } | fields


@pytest.mark.parametrize("between", ["activity", "identity"])
def test_a_late_claim_reads_again_what_another_writer_changed_meanwhile(
    postgres_url: str,
    _postgres_template: str,
    definition: Definition,
    monkeypatch: pytest.MonkeyPatch,
    between: str,
) -> None:
    """The API's writer checks its persons without locking them and claims them once its
    events are stored. Another writer that commits in between, on the same person, must
    not be missed: new activity (score, traits, events) is read again at the claim;
    changed identities (what the batch resolved against) make the transaction run again.
    Either way the store ends as if the two batches had run one after the other."""
    from mqlengine.ingest import stages
    from mqlengine.store.changes import LostRace

    urls = [pg.create_database(postgres_url, template=_postgres_template) for _ in range(2)]
    shared, reference = Database(urls[0]), Database(urls[1])
    relevant = scorer_for(definition).relevant
    late = Pipeline(definition, handoff=HANDOFF, memory=WriterState(relevant, late_claim=True))
    other = Pipeline(definition, handoff=HANDOFF, memory=WriterState(relevant))
    plain = Pipeline(definition, handoff=HANDOFF)
    now = START + timedelta(days=1)
    first = [
        _visit(1, START, type="page", properties={"path": "/pricing"}),
        _visit(
            2,
            START,
            type="identify",
            traits={"email": "ann@northwind.io", "title": "VP Marketing", "country": "US"},
        ),
    ]
    second = [_visit(3, now, type="track", event="Webinar Attended", properties={})]
    meanwhile = [_visit(4, now, type="track", event="Demo Requested", properties={})]
    if between == "identity":
        meanwhile = [_visit(4, now, type="identify", userId="user-ann", traits={"plan": "pro"})]
    real_claim = stages.claim
    interleaved = []

    def claim_after_the_other_writer(batch: Any) -> None:
        if not interleaved:  # once: the other writer commits between check and claim
            interleaved.append(True)
            with shared.engine.connect() as connection, other.transaction(connection):
                other.ingest(connection, meanwhile, now=now)
        real_claim(batch)

    try:
        with shared.engine.connect() as connection:
            with late.transaction(connection):
                late.ingest(connection, first, now=START)
            monkeypatch.setattr(stages, "claim", claim_after_the_other_writer)
            if between == "identity":
                with pytest.raises(LostRace), late.transaction(connection):
                    late.ingest(connection, second, now=now)
            with late.transaction(connection):
                late.ingest(connection, second, now=now)
        assert interleaved
        if between == "activity":
            assert late.memory is not None and late.memory.stats["stale_persons"] >= 1
        with reference.engine.connect() as connection:
            for messages, moment in ((first, START), (meanwhile, now), (second, now)):
                with plain.transaction(connection):
                    plain.ingest(connection, messages, now=moment)
        assert _by_visitor(shared) == _by_visitor(reference)
    finally:
        shared.dispose()
        reference.dispose()
        for url in urls:
            pg.drop_database(postgres_url, url)


def test_two_writers_creating_the_same_visitor_wait_instead_of_failing(
    postgres_url: str, _postgres_template: str, definition: Definition
) -> None:
    """A visitor nobody has stored yet arrives at two writers at once (two server
    processes). The second waits for the first's commit and then finds its person — no
    unique violation, no transaction run again."""
    import threading

    url = pg.create_database(postgres_url, template=_postgres_template)
    database = Database(url)
    first, second = (Pipeline(definition, handoff=HANDOFF) for _ in range(2))
    message = {"anonymousId": "anon-new", "type": "page", "properties": {"path": "/"}}
    outcome: list[Any] = []

    def other_writer() -> None:
        try:
            with database.engine.connect() as connection, second.transaction(connection):
                other = message | {"messageId": "w-2", "timestamp": START.isoformat()}
                outcome.append(second.ingest(connection, [other], now=START).persons)
        except Exception as error:
            outcome.append(error)

    try:
        with database.engine.connect() as connection:
            with first.transaction(connection):
                mine = message | {"messageId": "w-1", "timestamp": START.isoformat()}
                persons_first = first.ingest(connection, [mine], now=START).persons
                thread = threading.Thread(target=other_writer)
                thread.start()
                thread.join(1.0)
                assert thread.is_alive()  # waiting for this transaction
            thread.join(30)
        assert outcome == [persons_first]
        with database.read() as connection:
            assert connection.execute(select(persons.c.id)).scalars().all() == [*persons_first]
    finally:
        database.dispose()
        pg.drop_database(postgres_url, url)


def _by_visitor(database: Database) -> dict[tuple[str, str], Any]:
    """Each identity's person as values (ids differ between databases: each PostgreSQL
    writer takes its own block of the id sequence)."""
    with database.read() as connection:
        rows = {
            row.id: row
            for row in connection.execute(
                select(
                    persons.c.id,
                    persons.c.stage,
                    persons.c.total_score,
                    persons.c.traits,
                    persons.c.profile,
                    persons.c.flags,
                    persons.c.email,
                    persons.c.last_seen_at,
                    persons.c.mql_type,
                )
            )
        }
        events_of: dict[int, list[str]] = {}
        for message_id, person_id in connection.execute(
            select(events.c.message_id, events.c.person_id)
        ):
            events_of.setdefault(person_id, []).append(message_id)
        history: dict[int, list[tuple[Any, ...]]] = {}
        for row in connection.execute(
            select(
                stage_history.c.person_id, stage_history.c.to_stage, stage_history.c.reason
            ).order_by(stage_history.c.id)
        ):
            history.setdefault(row.person_id, []).append((row.to_stage, row.reason))
        result: dict[tuple[str, str], Any] = {}
        for kind, value, person_id in connection.execute(
            select(identities.c.kind, identities.c.value, identities.c.person_id)
        ):
            row = rows[person_id]
            result[(kind, value)] = (
                row.stage,
                round(row.total_score, 6),
                row.traits,
                row.profile,
                row.flags,
                row.email,
                row.last_seen_at,
                row.mql_type,
                sorted(events_of.get(person_id, [])),
                history.get(person_id, []),
            )
        return result


def _history_message(number: int, moment: datetime, visitor: int, rng: random.Random) -> Any:
    """One of a returning visitor's messages: pages and tracks the template's rules score
    (with a window, caps, once and once a day), tracks no rule names, and identifies."""
    base: dict[str, Any] = {
        "messageId": f"h-{number}",
        "anonymousId": f"anon-{visitor}",
        "timestamp": moment.isoformat(),
    }
    roll = rng.random()
    if roll < 0.45:
        path = rng.choice(
            ["/blog/a", "/blog/b", "/pricing", "/pricing/enterprise", "/", "/careers"]
        )
        base.update(type="page", properties={"path": path})
    elif roll < 0.8:
        event = rng.choice(
            [
                *("Webinar Attended", "Content Downloaded", "Email Link Clicked"),
                *("Demo Requested", "Invoice Paid", "Logged In"),  # no rule names the last two
            ]
        )
        base.update(type="track", event=event, properties={"plan": "pro"})
    else:
        base.update(
            type="identify",
            traits={
                "email": f"p{visitor}@northwind.io",
                "title": rng.choice(["VP Marketing", "CTO", "Data Analyst"]),
                "company": {"employees": 450, "industry": "software"},
            },
        )
    return base


@pytest.mark.parametrize("seed", [31, 32])
def test_a_person_read_back_is_scored_as_one_never_forgotten(
    databases: tuple[Database, Database], definition: Definition, seed: int
) -> None:
    """Three visitors return over 300 days, so their histories outgrow the 90-day window of
    `blog_reader`, the caps of `webinar_attended` and `content_download`, `once` and
    `once_per_day`; a writer that forgets everyone after every batch (reading them back:
    their profile, and only the events scoring can use) and one that forgets nothing
    make the same score cards, stage changes and rows."""
    forgetting_db, keeping_db = databases
    scorer = scorer_for(definition)
    forgetting = WriterState(scorer.relevant, max_bytes=1, matches=scorer)
    keeping = WriterState(scorer.relevant, max_bytes=2**30, matches=scorer)
    pipelines = [
        Pipeline(definition, handoff=HANDOFF, memory=forgetting),
        Pipeline(definition, handoff=HANDOFF, memory=keeping),
    ]
    rng = random.Random(seed)
    number = 0
    last: dict[int, Any] = {}  # person → its latest score card
    capped = False
    with forgetting_db.engine.connect() as one, keeping_db.engine.connect() as two:
        for batch in range(30):
            now = START + timedelta(days=10 * batch)
            messages = []
            for _ in range(rng.randrange(2, 12)):
                number += 1
                moment = now - timedelta(hours=rng.randrange(72))
                messages.append(_history_message(number, moment, rng.randrange(3), rng))
            results = []
            for pipeline, connection in zip(pipelines, (one, two), strict=True):
                with pipeline.transaction(connection):
                    results.append(pipeline.ingest(connection, messages, now=now))
            first, second = results
            assert first.outcomes == second.outcomes  # the score cards, every hit in them
            assert first.stage_changes == second.stage_changes
            for outcome in first.outcomes:
                last[outcome.person_id] = outcome.card
                capped |= any(c.earned > c.points for c in outcome.card.contributions)
    forgotten, kept = _snapshot(forgetting_db), _snapshot(keeping_db)
    for table in kept:
        assert forgotten[table] == kept[table], table
    # every person was forgotten and read back; the other writer forgot no one
    assert forgetting.stats["evicted"] >= 29 and keeping.stats["evicted"] == 0
    # the histories spanned the window and the caps: some person's blog pages before its
    # last score are more than its card's hits (older ones fell out of the window)
    with keeping_db.read() as connection:
        pages = repo.load_events(connection, list(last), names={"Page Viewed"})
    assert capped
    assert any(
        len([e for e in pages.get(pid, []) if str(e.properties.get("path")).startswith("/blog/")])
        > len(getattr(card.contribution("blog_reader"), "hits", ()))
        for pid, card in last.items()
    )


def test_a_person_read_back_is_not_judged_again(
    db_sqlite: Database, definition: Definition
) -> None:
    """The verdict on a profile is kept by the profile's content: a person forgotten and
    read back, and another person with the same traits, get the very verdict judged first."""
    scorer = scorer_for(definition)
    state = WriterState(scorer.relevant, matches=scorer)
    pipeline = Pipeline(definition, handoff=HANDOFF, memory=state)
    traits = {"title": "VP Marketing", "country": "US", "company": {"employees": 450}}

    def identify(visitor: int, number: int) -> dict[str, Any]:
        return {
            "type": "identify",
            "anonymousId": f"anon-{visitor}",
            "messageId": f"i{number}",
            "traits": traits,
            "timestamp": START.isoformat(),
        }

    with db_sqlite.engine.connect() as writer:
        with pipeline.transaction(writer):
            (first,) = pipeline.ingest(writer, [identify(1, 1)], now=START).persons
        judged = state.verdicts[first][1]
        state.forget_person(first)
        assert first not in state.verdicts
        with pipeline.transaction(writer):
            pipeline.ingest(writer, [_page(1, 2)], now=START + timedelta(hours=1))
        assert state.verdicts[first][1] is judged  # read back, not judged again
        with pipeline.transaction(writer):
            (other,) = pipeline.ingest(writer, [identify(2, 3)], now=START).persons
    profiles = [state.rows[pid].profile for pid in (first, other)]
    assert profiles[0] == profiles[1] and profiles[0] is not profiles[1]
    assert state.verdicts[other][1] is judged
    assert len(state.judged) >= 1 and state.judged.bytes > 0


def test_a_page_view_of_a_forgotten_person_reads_no_user_ids(
    db_sqlite: Database, definition: Definition
) -> None:
    """A returning visitor's page view needs the owner of its anonymous id, its row and
    its events, not its user ids: those are read only for a new user id or a merge."""
    scorer = scorer_for(definition)
    state = WriterState(scorer.relevant, matches=scorer)
    pipeline = Pipeline(definition, handoff=HANDOFF, memory=state)
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    with db_sqlite.engine.connect() as writer:
        with pipeline.transaction(writer):
            known = pipeline.ingest(writer, [_page(v, v) for v in range(3)], now=START)
        state.release()  # everyone forgotten
        sqlalchemy.event.listen(writer, "before_cursor_execute", record)
        with pipeline.transaction(writer):
            again = pipeline.ingest(writer, [_page(v, 10 + v) for v in range(3)], now=START)
        sqlalchemy.event.remove(writer, "before_cursor_execute", record)
        assert again.persons == known.persons
        reads = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
        assert any("FROM identities" in s for s in reads)  # the owners, by anonymous id
        assert not any("FROM identities" in s and "person_id IN" in s for s in reads)
        statements.clear()
        state.release()
        identify = {
            "type": "identify",
            "anonymousId": "anon-1",
            "userId": "user-1",
            "messageId": "u1",
            "timestamp": START.isoformat(),
        }
        sqlalchemy.event.listen(writer, "before_cursor_execute", record)
        with pipeline.transaction(writer):
            pipeline.ingest(writer, [identify], now=START)
        sqlalchemy.event.remove(writer, "before_cursor_execute", record)
    # a new user id: whether the visitor is someone else already is read
    assert any("FROM identities" in s and "person_id IN" in s for s in statements)

"""`mql score`: a full rescore with a batch engine, written back in chunks, recorded as a
run with a cursor. A run killed with SIGKILL mid-way is refused by a plain rerun, and
`--resume` finishes it with the very state an uninterrupted run leaves; stage changes go
through the online path with their score cards, notifications suppressed unless asked."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text

from mqlengine.batch.duckdb_engine import DuckDBEngine
from mqlengine.batch.engine import PythonEngine
from mqlengine.batch.rescore import FileSource, full_rescore
from mqlengine.batch.source import from_store
from mqlengine.demo.run import run_demo
from mqlengine.errors import ConflictError, NotFoundError
from mqlengine.services import outbox
from mqlengine.settings import Settings
from mqlengine.store.secretbox import SecretBox
from mqlengine.store.tables import persons, stage_history
from mqlengine.wiring import Wiring
from support.clock import NOW
from support.secrets import TEST_SECRET_KEY

LATER = NOW + timedelta(days=45)  # decay has taken many MQLs below the hysteresis band


@pytest.fixture(scope="module")
def demo_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rescore") / "demo.db"
    wiring = Wiring(_settings(path), clock=lambda: NOW)
    run_demo(wiring, now=NOW, persons_count=400, days=60, seed=5)
    wiring.db.engine.dispose()
    return path


def _settings(path: Path) -> Settings:
    return Settings(database_url=f"sqlite:///{path}", definition_path=path.parent / "none.yaml")


def _copy(source: Path, target: Path) -> Path:
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    return target


def _state(path: Path) -> dict[str, Any]:
    """What a rescore leaves behind (ids of generated rows left out)."""
    engine = create_engine(f"sqlite:///{path}")
    with engine.connect() as connection:

        def rows(sql: str) -> list[tuple[Any, ...]]:
            return [tuple(r) for r in connection.execute(text(sql))]

        state = {
            "persons": rows(
                "SELECT id, stage, round(fit_score, 9), round(intent_score, 9),"
                " round(total_score, 9), scored_at, mql_type, mql_at, definition_version"
                " FROM persons ORDER BY id"
            ),
            "changes": rows(
                "SELECT person_id, from_stage, to_stage, reason, changed_at FROM stage_history"
                " ORDER BY person_id, id"
            ),
            "snapshots": rows(
                "SELECT person_id, as_of, round(total, 9) FROM score_snapshots"
                " ORDER BY person_id, id"
            ),
            "outbox": rows(
                "SELECT status, topic, count(*) FROM outbox GROUP BY 1, 2 ORDER BY 1, 2"
            ),
        }
    engine.dispose()
    return state


def _mql(path: Path, *args: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "MQL_DATABASE_URL": f"sqlite:///{path}",
        "MQL_DEFINITION": str(path.parent / "none.yaml"),
        "MQL_CLOCK": NOW.isoformat(),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "mqlengine", "score", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _run(path: Path, *args: str) -> tuple[int, str]:
    process = _mql(path, *args)
    out, _ = process.communicate(timeout=300)
    return process.returncode, out


def test_scores_match_the_reference_and_changes_go_the_online_way(
    demo_file: Path, tmp_path: Path
) -> None:
    path = _copy(demo_file, tmp_path / "a.db")
    wiring = Wiring(_settings(path), clock=lambda: NOW)
    definition = wiring.definition().definition
    with wiring.db.begin() as connection:
        outbox.add_destination(
            connection,
            name="hook",
            kind="webhook",
            url="http://127.0.0.1:9/hook",
            now=NOW,
            box=SecretBox(TEST_SECRET_KEY),
            secret="whsec_" + "a" * 32,
        )
        pending = connection.execute(text("SELECT count(*) FROM outbox")).scalar_one()
    expected = PythonEngine().score(definition, from_store(wiring.db), LATER).to_pylist()
    leaving = [r["person_id"] for r in expected if r["next_stage"] == "lead"]
    assert leaving, "the fixture should have MQLs that decay below the band"
    report = full_rescore(
        wiring.db,
        definition,
        engine=DuckDBEngine(threads=1),
        now=NOW,
        as_of=LATER,
        chunk_persons=70,
        write_persons=25,
    )
    assert report.persons == len(expected) and report.mqls_left == len(leaving)
    with wiring.db.read() as connection:
        stored = {
            r.id: r
            for r in connection.execute(
                select(persons.c.id, persons.c.total_score, persons.c.stage, persons.c.scored_at)
            )
        }
        history = connection.execute(
            select(
                stage_history.c.person_id, stage_history.c.reason, stage_history.c.score_card
            ).where(stage_history.c.changed_at == LATER)
        ).all()
        statuses = dict(
            connection.execute(text("SELECT status, count(*) FROM outbox GROUP BY status")).all()
        )
        run = connection.execute(text("SELECT status, cursor, persons_done FROM rescore_runs"))
        run_row = run.one()
    for row in expected:
        assert stored[row["person_id"]].total_score == pytest.approx(row["total"], abs=1e-9)
        assert stored[row["person_id"]].scored_at == LATER
    assert all(stored[pid].stage == "lead" for pid in leaving)
    # the online path recorded each change with its reason and full score card
    moving = [r["person_id"] for r in expected if r["next_stage"] is not None]
    assert sorted(h.person_id for h in history) == sorted(moving)
    assert report.stage_changes == len(moving)
    assert all(h.score_card for h in history)
    assert all(h.reason == "score_below_hysteresis" for h in history if h.person_id in leaving)
    # the historical changes' notifications are recorded but never delivered
    assert statuses.get("suppressed", 0) > 0
    assert sum(n for status, n in statuses.items() if status != "suppressed") == pending
    assert run_row.status == "finished" and run_row.cursor == expected[-1]["person_id"]
    assert run_row.persons_done == len(expected)
    wiring.db.engine.dispose()


def test_an_unfinished_run_blocks_a_new_one_and_resumes(demo_file: Path, tmp_path: Path) -> None:
    path = _copy(demo_file, tmp_path / "b.db")
    wiring = Wiring(_settings(path), clock=lambda: NOW)
    definition = wiring.definition().definition
    with pytest.raises(NotFoundError, match="no unfinished rescore run"):
        full_rescore(wiring.db, definition, engine=DuckDBEngine(), now=NOW, resume=True)

    class Boom(Exception):
        pass

    calls = 0

    def stop_after_two(done: int, total: int) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise Boom

    with pytest.raises(Boom):
        full_rescore(
            wiring.db,
            definition,
            engine=DuckDBEngine(),
            now=NOW,
            as_of=LATER,
            chunk_persons=100,
            write_persons=50,
            progress=stop_after_two,
        )
    with pytest.raises(ConflictError, match=r"stopped after 100 of \d+ persons.*--resume"):
        full_rescore(wiring.db, definition, engine=DuckDBEngine(), now=NOW)
    with pytest.raises(ConflictError, match="same engine"):
        full_rescore(wiring.db, definition, engine=PythonEngine(), now=NOW, resume=True)
    report = full_rescore(wiring.db, definition, engine=DuckDBEngine(), now=NOW, resume=True)
    assert report.resumed_from == 100 and report.as_of == LATER
    with wiring.db.read() as connection:
        statuses = connection.execute(text("SELECT status FROM rescore_runs")).scalars().all()
        unscored = connection.execute(
            select(func.count())
            .select_from(persons)
            .where(persons.c.scored_at != LATER, persons.c.merged_into.is_(None))
        ).scalar_one()
    assert statuses == ["finished"] and unscored == 0
    wiring.db.engine.dispose()


def test_sigkill_mid_run_then_resume_equals_an_uninterrupted_run(
    demo_file: Path, tmp_path: Path
) -> None:
    whole = _copy(demo_file, tmp_path / "whole.db")
    killed = _copy(demo_file, tmp_path / "killed.db")
    args = ("--as-of", LATER.isoformat(), "--chunk", "20")
    code, out = _run(whole, *args)
    assert code == 0, out
    assert "left MQL (notifications suppressed)" in out

    process = _mql(killed, *args)
    probe = sqlite3.connect(killed, timeout=30)
    done = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        try:
            row = probe.execute("SELECT persons_done FROM rescore_runs").fetchone()
        except sqlite3.OperationalError:
            row = None  # the table is not there yet
        done = row[0] if row else 0
        if done >= 60:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    process.communicate(timeout=30)  # reaps it and closes its pipe
    probe.close()
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"

    code, out = _run(killed, *args)
    assert code != 0 and "stopped after" in out and "--resume" in out, out
    code, out = _run(killed, "--resume")
    assert code == 0 and "resumed after" in out, out
    assert _state(killed) == _state(whole)


def test_parquet_exports_as_the_source(demo_file: Path, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    path = _copy(demo_file, tmp_path / "c.db")
    wiring = Wiring(_settings(path), clock=lambda: NOW)
    data = from_store(wiring.db)
    pq.write_table(data.events, tmp_path / "events.parquet")
    pq.write_table(data.persons, tmp_path / "persons.parquet")
    source = FileSource(tmp_path / "events.parquet", tmp_path / "persons.parquet")
    definition = wiring.definition().definition
    report = full_rescore(
        wiring.db, definition, engine=DuckDBEngine(), now=NOW, as_of=LATER, source=source
    )
    assert report.persons == data.persons.num_rows
    expected = DuckDBEngine().score(definition, data, LATER).to_pylist()
    with wiring.db.read() as connection:
        totals = dict(connection.execute(select(persons.c.id, persons.c.total_score)).all())
    assert all(totals[r["person_id"]] == pytest.approx(r["total"], abs=1e-9) for r in expected)
    with pytest.raises(NotFoundError, match="no such file"):
        FileSource(tmp_path / "nope.parquet", tmp_path / "persons.parquet")
    wiring.db.engine.dispose()


def test_unchanged_cards_write_only_scored_at(demo_file: Path, tmp_path: Path) -> None:
    """A rerun whose cards are unchanged leaves the figures (and the lead lists' score
    indexes) alone and records no snapshot; a day later only the moved figures are
    written. A trigger records every UPDATE that sets a score column."""
    path = _copy(demo_file, tmp_path / "d.db")
    wiring = Wiring(_settings(path), clock=lambda: NOW)
    definition = wiring.definition().definition
    engine = DuckDBEngine(threads=1)

    def rescore_at(moment: Any) -> None:
        full_rescore(wiring.db, definition, engine=engine, now=NOW, as_of=moment, chunk_persons=90)

    rescore_at(LATER)
    with wiring.db.begin() as connection:
        connection.execute(text("CREATE TABLE score_writes (person_id INTEGER)"))
        connection.execute(
            text(
                "CREATE TRIGGER score_written AFTER UPDATE OF fit_score, intent_score,"
                " total_score, definition_version ON persons"
                " BEGIN INSERT INTO score_writes VALUES (new.id); END"
            )
        )

    def counts() -> tuple[list[int], int]:
        with wiring.db.read() as connection:
            written = connection.execute(text("SELECT person_id FROM score_writes")).scalars()
            snapshots = connection.execute(text("SELECT count(*) FROM score_snapshots"))
            return sorted(written), snapshots.scalar_one()

    with wiring.db.read() as connection:
        # their figures were written by the online scorer, equal to the engine's to 1e-9
        # but not always to the last bit: a rerun may write them again
        online = set(
            connection.execute(
                select(stage_history.c.person_id).where(stage_history.c.changed_at == LATER)
            ).scalars()
        )
    assert online
    _, snapshots = counts()
    rescore_at(LATER)  # the same moment: every card as stored
    written, snapshots_now = counts()
    assert set(written) <= online and snapshots_now == snapshots

    next_day = LATER + timedelta(days=1)
    data = from_store(wiring.db)
    before = {r["person_id"]: r for r in engine.score(definition, data, LATER).to_pylist()}
    after = engine.score(definition, data, next_day).to_pylist()
    moved = sorted(
        r["person_id"]
        for r in after
        if (r["fit"], r["intent"], r["total"])
        != tuple(before[r["person_id"]][k] for k in ("fit", "intent", "total"))
    )
    still = [r["person_id"] for r in after if r["person_id"] not in set(moved)]
    assert moved and still, "the fixture should have persons with and without decaying intent"
    assert not any(r["next_stage"] for r in after if r["person_id"] in set(still))
    rescore_at(next_day)
    written, _ = counts()
    assert set(moved) <= set(written) <= set(moved) | online
    with wiring.db.read() as connection:
        stale = connection.execute(
            select(func.count())
            .select_from(persons)
            .where(persons.c.scored_at != next_day, persons.c.merged_into.is_(None))
        ).scalar_one()
    assert stale == 0  # unchanged cards still record when they were scored
    wiring.db.engine.dispose()

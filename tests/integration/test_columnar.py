"""The store's columnar copy: refreshed incrementally it equals a copy built from scratch
after new events, stage changes, person updates, merges, unmerges and erasures; the reports
give the same figures with and without it; batch engines read the same input from it as
from the store; readers and refreshes in other processes do not disturb each other."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from mqlengine.batch.columnar import batch_input_from_columnar
from mqlengine.batch.engine import PythonEngine
from mqlengine.batch.source import from_store
from mqlengine.cli.app import app
from mqlengine.demo.run import run_demo
from mqlengine.domain.funnel import HealthRules
from mqlengine.errors import UnavailableError
from mqlengine.facade import MqlEngine
from mqlengine.reports.data import (
    DERIVED_VERSION,
    clear_cache,
    derive_report_tables,
    open_report_data,
    refresh_columnar,
    report_data,
)
from mqlengine.reports.query import Filters
from mqlengine.reports.service import REPORTS, run_report
from mqlengine.services.feedback import apply_feedback
from mqlengine.settings import Settings
from mqlengine.store import columnar
from mqlengine.store.columnar import TABLES, ColumnarCopy, columnar_path, reading
from mqlengine.store.tables import merges, persons
from mqlengine.wiring import Wiring
from support.clock import NOW

COMPARED = [t for t in TABLES if t not in ("meta", "pending")] + ["entries", "leads"]


@pytest.fixture()
def store(tmp_path: Path) -> Wiring:
    path = tmp_path / "mql.db"
    settings = Settings(database_url=f"sqlite:///{path}", definition_path=tmp_path / "none.yaml")
    wiring = Wiring(settings, clock=lambda: NOW)
    run_demo(wiring, now=NOW, persons_count=80, days=30, seed=5)
    clear_cache()
    return wiring


def snapshot(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    with reading(path) as connection:
        return {
            name: connection.execute(f"SELECT * FROM {name} ORDER BY ALL").fetchall()
            for name in COMPARED
        }


def rebuilt(wiring: Wiring, folder: Path) -> dict[str, list[tuple[Any, ...]]]:
    path = folder / "scratch.duckdb"
    path.unlink(missing_ok=True)
    ColumnarCopy(wiring.db, path).refresh(
        rebuild=True, derive=derive_report_tables, derive_version=DERIVED_VERSION
    )
    return snapshot(path)


def assert_current(wiring: Wiring, folder: Path) -> dict[str, Any]:
    stats = refresh_columnar(wiring.db)
    assert stats is not None and not stats.rebuilt
    path = columnar_path(wiring.db)
    assert path is not None
    incremental, scratch = snapshot(path), rebuilt(wiring, folder)
    for name in COMPARED:
        assert incremental[name] == scratch[name], name
    return stats.as_dict()


def track(anonymous: str, message: str, *, user: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "track",
        "messageId": message,
        "anonymousId": anonymous,
        "event": "Pricing Page Viewed",
        "timestamp": (NOW - timedelta(minutes=5)).isoformat(),
        **extra,
    }
    if user is not None:
        body["userId"] = user
    return body


def test_incremental_refresh_matches_a_rebuild(store: Wiring, tmp_path: Path) -> None:
    path = columnar_path(store.db)
    assert path == tmp_path / "mql.columnar.duckdb"
    first = refresh_columnar(store.db)
    assert first is not None and first.rebuilt
    again = refresh_columnar(store.db)
    assert again is not None and not again.changed  # nothing new: the file is untouched
    engine = MqlEngine(store)

    # new events of a new visitor and of a known person, and a trait update
    engine.ingest([track("anon-new", "m-1"), track("anon-new", "m-2")])
    stats = assert_current(store, tmp_path)
    assert stats["new_events"] == 2 and stats["dirty_persons"] >= 1
    engine.ingest(
        [
            {
                "type": "identify",
                "messageId": "m-3",
                "anonymousId": "anon-new",
                "userId": "user-new",
                "traits": {"email": "cto@bigcorp.example", "title": "CTO", "company": "BigCorp"},
                "timestamp": NOW.isoformat(),
            }
        ]
    )
    assert_current(store, tmp_path)

    # a stage change by sales feedback
    definition = store.definition().definition
    with store.db.read() as connection:
        mql = connection.exec_driver_sql(
            "SELECT id FROM persons WHERE stage = 'mql' ORDER BY id LIMIT 1"
        ).scalar_one()
    with store.db.begin() as connection:
        apply_feedback(connection, definition, mql, "accept", actor="rep-ann", at=NOW, now=NOW)
    stats = assert_current(store, tmp_path)
    assert stats["new_events"] == 0 and stats["dirty_persons"] >= 1

    # a merge (a second visitor identifies as the same user), then its undoing
    engine.ingest([track("anon-other", "m-4")])
    engine.ingest([track("anon-other", "m-5", user="user-new")])
    with store.db.read() as connection:
        merge_id = connection.execute(select(merges.c.id).order_by(merges.c.id.desc())).scalar()
    assert merge_id is not None
    stats = assert_current(store, tmp_path)
    assert stats["moved_persons"] >= 2
    engine.unmerge(int(merge_id))
    assert_current(store, tmp_path)

    # an erasure removes the person's rows from the copy too
    erased = engine.erase(mql, actor="dpo")
    assert erased["counts"]["persons"] >= 1
    stats = assert_current(store, tmp_path)
    assert stats["erased_persons"] >= 1
    with reading(path) as connection:  # type: ignore[arg-type]
        for name in ("persons", "history", "events", "touches", "assignments"):
            column = "id" if name == "persons" else "person_id"
            left = connection.execute(f"SELECT count(*) FROM {name} WHERE {column} = ?", [mql])
            assert left.fetchone() == (0,), name


def test_an_update_without_a_trace_is_found_by_its_row_version(
    store: Wiring, tmp_path: Path
) -> None:
    refresh_columnar(store.db)
    with store.db.begin() as connection:
        connection.exec_driver_sql(
            "UPDATE persons SET channel = 'partner', row_version = row_version + 1 "
            "WHERE id = (SELECT min(id) FROM persons WHERE merged_into IS NULL)"
        )
    stats = assert_current(store, tmp_path)
    assert stats["unexplained_changes"] == 1


def test_a_report_trusts_the_last_row_version_check_for_a_while(
    store: Wiring, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A report's refresh skips the scan of every person's row version while the last one
    is recent; an explicit refresh, or the next report once it is old, finds the change."""
    path = columnar_path(store.db)
    assert path is not None
    assert refresh_columnar(store.db).checked  # type: ignore[union-attr]
    with store.db.begin() as connection:
        connection.exec_driver_sql(
            "UPDATE persons SET channel = 'partner', row_version = row_version + 1 "
            "WHERE id = (SELECT min(id) FROM persons WHERE merged_into IS NULL)"
        )
    refresh = ColumnarCopy(store.db, path).refresh
    kept = refresh(derive=derive_report_tables, derive_version=DERIVED_VERSION, check=None)
    assert not kept.checked and kept.unexplained == 0 and not kept.changed
    monkeypatch.setattr(columnar, "CHECK_EVERY", 0.0)
    found = refresh(derive=derive_report_tables, derive_version=DERIVED_VERSION, check=None)
    assert found.checked and found.unexplained == 1
    monkeypatch.setattr(columnar, "CHECK_EVERY", 300.0)
    again = refresh(derive=derive_report_tables, derive_version=DERIVED_VERSION, check=None)
    assert not again.checked and not again.changed  # the check's time was kept
    assert_current(store, tmp_path)


def test_a_history_import_is_in_the_next_report(
    store: Wiring, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Moving a lead's first-seen date earlier leaves no new row: the import brings the copy
    up to date itself, so the next report (which trusts its last check) shows it."""
    refresh_columnar(store.db)
    with store.db.read() as connection:
        person_id, email = connection.execute(
            select(persons.c.id, persons.c.email)
            .where(persons.c.merged_into.is_(None), persons.c.email.is_not(None))
            .order_by(persons.c.id)
            .limit(1)
        ).one()
    earlier = (NOW - timedelta(days=400)).date().isoformat()
    (tmp_path / "history.csv").write_text(f"email,created_at\n{email},{earlier}\n")
    monkeypatch.setenv("MQL_DATABASE_URL", store.db.url)
    monkeypatch.setenv("MQL_CLOCK", NOW.isoformat())
    done = CliRunner().invoke(app, ["history", "import", str(tmp_path / "history.csv")])
    assert done.exit_code == 0, done.output
    with open_report_data(store.db) as data:
        seen = data.cursor().execute(
            "SELECT CAST(first_seen_at AS DATE) FROM leads WHERE id = ?", [person_id]
        )
        assert str(seen.fetchone()[0]) == earlier  # type: ignore[index]
    assert_current(store, tmp_path)


def test_reports_read_in_place_equal_reports_read_into_memory(store: Wiring) -> None:
    since = Filters(since=NOW - timedelta(days=60), until=NOW)
    for name in REPORTS:
        clear_cache()
        rows = report_data(store.db)
        kept = run_report(store.db, name, since, now=NOW, rules=HealthRules(), data=rows)
        with open_report_data(store.db) as data:
            assert data.features == rows.features
            in_place = run_report(store.db, name, since, now=NOW, rules=HealthRules(), data=data)
        assert json.dumps(in_place, default=str) == json.dumps(kept, default=str), name
    path = columnar_path(store.db)
    assert path is not None
    # the block holds the copy's shared lock
    with open_report_data(store.db), pytest.raises(UnavailableError):
        ColumnarCopy(store.db, path).refresh(check=False, lock_timeout=0.2)


def test_reports_are_identical_with_and_without_the_copy(store: Wiring) -> None:
    since = Filters(since=NOW - timedelta(days=60), until=NOW)
    for name in REPORTS:
        for by in (None, "channel") if name in ("funnel", "velocity") else (None,):
            clear_cache()
            rows = report_data(store.db, columnar=False)
            plain = run_report(
                store.db, name, since, now=NOW, rules=HealthRules(), by=by, data=rows
            )
            copied = run_report(
                store.db,
                name,
                since,
                now=NOW,
                rules=HealthRules(),
                by=by,
                data=report_data(store.db, columnar=True),
            )
            assert json.dumps(copied, default=str) == json.dumps(plain, default=str), (name, by)


def test_batch_engines_read_the_same_input_from_the_copy(store: Wiring) -> None:
    stored, copied = from_store(store.db), batch_input_from_columnar(store.db)
    assert copied.persons.schema == stored.persons.schema
    assert copied.events.schema == stored.events.schema
    # the same rows; JSON columns as the same objects (key order of the text may differ)
    for name in ("persons", "events"):
        mine, theirs = getattr(copied, name).to_pylist(), getattr(stored, name).to_pylist()
        for row in (*mine, *theirs):
            for key in ("profile", "properties"):
                if key in row:
                    row[key] = json.loads(row[key])
        assert mine == theirs, name
    definition = store.definition().definition
    engine = PythonEngine()
    assert engine.score(definition, copied, NOW).equals(engine.score(definition, stored, NOW))
    until = NOW - timedelta(days=10)
    assert (
        batch_input_from_columnar(store.db, until=until).events.num_rows
        == from_store(store.db, until=until).events.num_rows
    )


def test_a_refresh_waits_for_a_reader(store: Wiring) -> None:
    refresh_columnar(store.db)
    path = columnar_path(store.db)
    assert path is not None
    MqlEngine(store).ingest([track("anon-wait", "w-1")])
    released = threading.Event()
    holding = threading.Event()

    def reader() -> None:
        with reading(path) as connection:
            holding.set()
            connection.execute("SELECT count(*) FROM events").fetchone()
            time.sleep(0.5)
            released.set()

    thread = threading.Thread(target=reader)
    thread.start()
    holding.wait(5)
    stats = refresh_columnar(store.db)
    assert released.is_set()  # the refresh began only after the reader let go
    assert stats is not None and stats.new_events == 1
    thread.join()


def test_concurrent_processes_and_a_corrupted_copy(store: Wiring, tmp_path: Path) -> None:
    env_db = str(store.db.url)
    command = [sys.executable, "-m", "mqlengine", "--database", env_db]

    def report() -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*command, "report", "funnel", "--format", "json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
        )

    runs = [report() for _ in range(3)]
    refresher = subprocess.run(
        [*command, "db", "columnar", "--json"], capture_output=True, text=True, cwd=tmp_path
    )
    outputs = [run.communicate(timeout=120) for run in runs]
    assert refresher.returncode == 0, refresher.stderr
    assert all(run.returncode == 0 for run in runs), [err for _, err in outputs]
    figures = {json.dumps(json.loads(out)["rows"]) for out, _ in outputs}
    assert len(figures) == 1
    path = columnar_path(store.db)
    assert path is not None
    path.write_bytes(b"not a database at all" * 100)
    again = subprocess.run(
        [*command, "report", "funnel", "--format", "json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert again.returncode == 0, again.stderr
    assert json.dumps(json.loads(again.stdout)["rows"]) in figures
    rebuilt_run = subprocess.run(
        [*command, "db", "columnar", "--rebuild", "--json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert rebuilt_run.returncode == 0, rebuilt_run.stderr
    assert json.loads(rebuilt_run.stdout)["rebuilt"] is True

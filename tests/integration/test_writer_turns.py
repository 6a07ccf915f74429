"""Turn-taking between SQLite writers (``store/sqlite.WriterTurns``) and the writers' quick
retry for the lock: the API's busy writer lets occasional writers (worker, feedback,
CLI) go first, across threads and processes, and a dead process's claim goes with it."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError

from mqlengine.store import sqlite as sqlitemodule
from mqlengine.store.db import Database
from mqlengine.store.sqlite import WriterTurns
from mqlengine.store.tables import events
from support.localserver import local_server
from support.paths import EXAMPLE


def test_busy_writer_goes_on_at_once_when_nobody_waits(tmp_path: Path) -> None:
    turns = WriterTurns(str(tmp_path / "x.db"))
    try:
        assert turns.wait_for_others() == 0.0
        assert turns.wait_for_others() == 0.0
    finally:
        turns.close()


def test_busy_writer_waits_while_another_writer_wants_in(tmp_path: Path) -> None:
    path = str(tmp_path / "x.db")
    busy, other = WriterTurns(path), WriterTurns(path)
    released = threading.Event()

    def hold() -> None:
        with other.want():
            held.set()
            time.sleep(0.3)
            released.set()

    held = threading.Event()
    thread = threading.Thread(target=hold)
    thread.start()
    held.wait(5)
    try:
        waited = busy.wait_for_others()
        assert released.is_set(), "the busy writer went on while the other still wanted in"
        assert waited > 0
    finally:
        thread.join()
        busy.close()


def test_busy_writer_stops_waiting_after_max_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(WriterTurns, "MAX_WAIT", 0.2)
    path = str(tmp_path / "x.db")
    busy = WriterTurns(path)
    try:
        with WriterTurns(path).want():
            assert 0.2 <= busy.wait_for_others() < 5
    finally:
        busy.close()


def test_a_killed_process_no_longer_holds_its_turn(tmp_path: Path) -> None:
    path = str(tmp_path / "x.db")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from mqlengine.store.sqlite import WriterTurns\n"
            f"with WriterTurns({path!r}).want():\n"
            "    print('held', flush=True)\n"
            "    time.sleep(600)\n",
        ],
        stdout=subprocess.PIPE,
    )
    busy = WriterTurns(path)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == b"held"
        waiter = threading.Thread(target=busy.wait_for_others)
        waiter.start()
        waiter.join(0.3)
        assert waiter.is_alive(), "the busy writer should wait for the other process"
        holder.kill()
        holder.wait(10)
        waiter.join(5)
        assert not waiter.is_alive()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)
        if holder.stdout is not None:
            holder.stdout.close()
        busy.close()


def test_writer_gets_the_lock_as_soon_as_it_is_free_and_gives_up_after_the_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = Database(f"sqlite:///{tmp_path}/x.db")
    try:
        with database.begin() as connection:
            connection.execute(text("CREATE TABLE t (x INTEGER)"))
        holding = threading.Event()
        release = threading.Event()

        def hold_lock() -> None:
            with database.engine.begin() as connection:  # BEGIN IMMEDIATE, no turn asked
                connection.execute(text("INSERT INTO t VALUES (1)"))
                holding.set()
                release.wait(10)

        thread = threading.Thread(target=hold_lock)
        thread.start()
        holding.wait(5)
        threading.Timer(0.3, release.set).start()
        with database.begin() as connection:  # waits for the lock, then gets it
            connection.execute(text("INSERT INTO t VALUES (2)"))
        thread.join()
        with database.read() as connection:
            assert connection.execute(text("SELECT count(*) FROM t")).scalar_one() == 2

        # a lock that is never released: a clear "database is locked" after the timeout
        monkeypatch.setattr(sqlitemodule, "BUSY_TIMEOUT", 0.2)
        holding.clear()
        release.clear()
        thread = threading.Thread(target=hold_lock)
        thread.start()
        holding.wait(5)
        try:
            with pytest.raises(OperationalError, match="locked"), database.begin():
                pass
        finally:
            release.set()
            thread.join()
        with database.begin() as connection:  # the connection is usable again
            connection.execute(text("INSERT INTO t VALUES (3)"))
    finally:
        database.dispose()


@pytest.mark.slow
def test_the_api_writer_lets_a_waiting_writer_go_first(tmp_path: Path) -> None:
    """A real server: while another process says it wants to write, the server's writer
    commits nothing (the request waits); once it is done, the request is committed."""
    url = f"sqlite:///{tmp_path}/api.db"
    definition = tmp_path / "mql.yaml"
    definition.write_text(EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    with local_server(url, definition, log=tmp_path / "server.log") as server:
        turns = WriterTurns(f"{tmp_path}/api.db")
        answers: list[int] = []

        def send() -> None:
            with httpx.Client(auth=(server.write_key, ""), timeout=30) as http:
                body = {"type": "page", "anonymousId": "a1", "messageId": "m1", "name": "Home"}
                answers.append(http.post(f"{server.url}/v1/page", json=body).status_code)

        with turns.want():
            sender = threading.Thread(target=send)
            sender.start()
            sender.join(1.0)
            assert sender.is_alive(), "the server committed while another writer waited"
        sender.join(10)
        assert answers == [200]
    database = Database(url)
    try:
        with database.read() as connection:
            assert connection.execute(select(func.count()).select_from(events)).scalar_one() == 1
    finally:
        database.dispose()

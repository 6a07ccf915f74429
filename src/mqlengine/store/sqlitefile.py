"""A SQLite store's file, without SQLAlchemy: creating it private, the writers' turns
(:class:`WriterTurns`) and short read-only questions asked with the standard library's
driver (whether the schema is at the newest revision, whether a table has rows), which
let a short command answer an empty store without loading SQLAlchemy at all."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # not a POSIX system: writers fall back to SQLite's own waiting
    fcntl = None  # type: ignore[assignment]

_LOCK_POLL = 0.0005  # seconds between two tries for a lock


def create_private(path: str) -> None:
    """Create an empty database file readable by its owner only (0600), when missing.
    SQLite gives the WAL and shared-memory files the database file's permissions, so
    they follow; without this a new file took the umask's (typically 0644)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)


def read_rows(path: str | Path, sql: str) -> list[tuple[Any, ...]]:
    """The rows of one read-only statement on the SQLite file at ``path`` (which must
    exist: it is opened read-only, never created). Raises :class:`sqlite3.Error`."""
    uri = f"{Path(path).resolve().as_uri()}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True, timeout=30)) as connection:
        return connection.execute(sql).fetchall()


class WriterTurns:
    """Turn-taking between the writers of one SQLite database file.

    SQLite lets one writer in at a time and keeps no queue: a writer that finds the
    database locked waits and tries again. A writer that starts its next transaction the
    moment it committed — the API's group-commit writer under load — therefore gets in
    nearly every time, and everybody else waits: the worker's outbox updates, a sales
    rep's feedback, a CLI command. Measured before this existed: under a 5,000 events/s
    load the worker delivered 17 webhooks a second instead of 800.

    So occasional writers say that they want to write, for as long as they do, with a
    shared lock on ``<database>-writers`` (:meth:`want`), and the busy writer lets them
    go first (:meth:`wait_for_others`, before each of its transactions), which costs it
    one failed lock attempt when nobody waits. The locks are advisory ``flock`` locks:
    the operating system drops them when a process dies, and deleting the file is
    harmless."""

    MAX_WAIT = 5.0  # the busy writer never waits longer than this for others to finish

    def __init__(self, database_path: str) -> None:
        self.path = f"{database_path}-writers"
        self._fd: int | None = None

    def _open(self) -> int:
        return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)

    @contextmanager
    def want(self) -> Iterator[None]:
        """Held by an occasional writer around its whole transaction."""
        if fcntl is None:
            yield
            return
        fd = self._open()  # one per holder: flock locks belong to the open file
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)  # releases the lock

    def wait_for_others(self) -> float:
        """Called by the busy writer between its transactions: returns once no other
        writer wants in (or after :attr:`MAX_WAIT`); the seconds it waited."""
        if fcntl is None:
            return 0.0
        if self._fd is None:
            self._fd = self._open()
        started: float | None = None
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                now = time.monotonic()
                started = now if started is None else started
                if now - started >= self.MAX_WAIT:
                    return now - started
                time.sleep(_LOCK_POLL)
                continue
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            return 0.0 if started is None else time.monotonic() - started

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

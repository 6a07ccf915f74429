"""Everything that exists only because SQLite is behind the store.

SQLite allows one writer at a time and syncs the whole write-ahead log on commit, so it
needs machinery PostgreSQL does not: pragmas on every connection, writers that take the
write lock up front (``BEGIN IMMEDIATE``) and let occasional writers go first
(:class:`WriterTurns`), WAL checkpoints on their own thread, and a cheap "did anyone
else commit" check (``PRAGMA data_version``). The rest of the engine reaches these only
through the dialect-blind interfaces of :mod:`mqlengine.store.dialect`
(:class:`~mqlengine.store.dialect.WriterSupport`) and :mod:`mqlengine.store.changes`.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from typing import Any

from sqlalchemy import Connection, Engine, event

from mqlengine.store.dialect import WriterSupport
from mqlengine.store.sqlitefile import _LOCK_POLL, WriterTurns, create_private

__all__ = ["WriterTurns", "create_private", "install"]

log = logging.getLogger("mqlengine.store")


def install(engine: Engine) -> None:
    """Pragmas on every new connection, ``BEGIN IMMEDIATE`` for every write transaction."""
    event.listen(engine, "connect", _sqlite_pragmas)
    event.listen(engine, "begin", _sqlite_begin)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA cache_size=-65536")
    # deleted rows are overwritten with zeros, not left in free pages: an erased person's
    # data must not survive in the file (see mqlengine.services.privacy)
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()
    # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own is deferred).
    dbapi_connection.isolation_level = None


BUSY_TIMEOUT = 30.0  # seconds a writer waits for SQLite's write lock before giving up


def _sqlite_begin(connection: Connection) -> None:
    """Writers take the write lock up front (BEGIN IMMEDIATE): two transactions can then
    never both read and then fail to upgrade to writing; readers stay deferred.

    While another connection holds the lock, the writer tries again every half
    millisecond rather than with SQLite's own backoff (which sleeps up to 100 ms between
    tries): a writer that was let in (see :class:`WriterTurns`) starts at once, instead of
    leaving the database idle until its next try."""
    if connection.get_execution_options().get("mql_read_only"):
        connection.exec_driver_sql("BEGIN")
        return
    raw = connection.connection.dbapi_connection
    assert raw is not None
    deadline = time.monotonic() + BUSY_TIMEOUT
    raw.execute("PRAGMA busy_timeout=0")
    try:
        while True:
            try:
                raw.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) and "busy" not in str(error):
                    raise
                if time.monotonic() >= deadline:
                    break
            time.sleep(_LOCK_POLL)
    finally:
        raw.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT * 1000)}")
    connection.exec_driver_sql("BEGIN IMMEDIATE")  # the last try: SQLAlchemy's own error


# --- a long-running writer's connection --------------------------------------------------


def writer_setup(connection: Connection, *, durable: bool, wal_pages: int) -> None:
    """A SQLite writer connection: ``synchronous=FULL`` when commits must survive power
    loss, and its own WAL checkpoint threshold (in pages)."""
    raw = connection.connection.dbapi_connection
    assert raw is not None
    if durable:
        raw.execute("PRAGMA synchronous=FULL")
    raw.execute(f"PRAGMA wal_autocheckpoint={int(wal_pages)}")


def checkpoint(connection: Connection) -> None:
    """A passive WAL checkpoint: copies what it can, never waits for readers or writers."""
    raw = connection.connection.dbapi_connection
    assert raw is not None
    raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


def truncate_wal(engine: Engine) -> bool:
    """Copy the write-ahead log into the database and truncate it to zero bytes, so
    rows deleted (and overwritten, ``secure_delete``) in the database leave no older copy
    of their pages in the log. False when a reader kept part of the log busy."""
    raw = engine.raw_connection()  # outside any transaction: a checkpoint cannot run in one
    try:
        cursor = raw.cursor()
        # a busy ingest writer is not made to wait long: the next checkpoint finishes it
        cursor.execute("PRAGMA busy_timeout=2000")
        try:
            busy, _log, _done = cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.OperationalError:
            busy = 1
        cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT * 1000)}")
        cursor.close()
    finally:
        raw.close()
    return not busy


def data_version(connection: Connection) -> int:
    """SQLite's ``data_version``: changes exactly when another connection committed."""
    return int(connection.exec_driver_sql("PRAGMA data_version").scalar_one())


class SqliteWriterSupport(WriterSupport):
    """The busy writer of a SQLite file.

    Its connection runs with ``synchronous=FULL`` when ``durable``: with group commit the
    extra sync per transaction is cheap, and an acknowledged event then survives power
    loss, not only a crash of the process. Checkpoints (copying the WAL back into the
    database file) run on their own thread and connection, so commits seldom wait for
    one. The writer still checkpoints when the WAL has grown large (``WAL_PAGES``): by
    then the other thread has copied nearly all of it, and only a checkpoint right after
    a commit lets the next transaction start the WAL file from its beginning again."""

    CHECKPOINT_EVERY = 0.2  # seconds
    WAL_PAGES = 8192  # the writer's own checkpoint threshold (32 MB of 4 KB pages)

    def __init__(self, engine: Engine, turns: WriterTurns | None, *, durable: bool) -> None:
        self.engine = engine
        self.turns = turns
        self.durable = durable
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def prepare(self, connection: Connection) -> None:
        writer_setup(connection, durable=self.durable, wal_pages=self.WAL_PAGES)

    def start_housekeeping(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._checkpoints, name="mql-checkpoint", daemon=True
            )
            self._thread.start()

    def stop_housekeeping(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None

    def give_way(self) -> bool:
        return self.turns is not None and self.turns.wait_for_others() > 0

    def release_memory(self, connection: Connection) -> None:
        # On the driver's connection: through SQLAlchemy the pragma would begin a
        # transaction (BEGIN IMMEDIATE, the write lock) and leave it open.
        raw = connection.connection.dbapi_connection
        if raw is not None:
            raw.execute("PRAGMA shrink_memory")

    def _checkpoints(self) -> None:
        """Passive checkpoints while the writer runs: they never block it or readers."""
        connection = self.engine.connect()
        try:
            while not self._stop.wait(self.CHECKPOINT_EVERY):
                try:
                    checkpoint(connection)
                except Exception:  # a checkpoint is an optimisation; the next one retries
                    log.warning("WAL checkpoint failed", exc_info=True)
            checkpoint(connection)
        finally:
            connection.close()

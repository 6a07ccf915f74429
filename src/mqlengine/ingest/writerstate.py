"""What the ingest writer remembers between its own transactions.

The HTTP API has one writer thread per process, and on SQLite one writer at a time holds
the database. Between two of its transactions the writer can therefore keep what it last
wrote — who owns which identity, each person's pipeline columns and traits, each person's
scoring-relevant events — and skip reading it back on the next batch. Reads were most of
the per-event cost of real-time ingest.

The memory is only trusted while nobody else has changed what it holds. At the start of
each transaction (under SQLite's write lock, ``BEGIN IMMEDIATE``) the writer asks
``PRAGMA data_version``, which changes exactly when *another* connection committed —
another server process, the feedback endpoint's connection, a CLI command, the outbox
worker. If it changed, the writer reads the ``ingest_epoch`` counter, which SQLite
triggers bump on every change to the remembered rows (migration 0008): when the counter
moved past what the writer's own last transaction left, everything is forgotten and read
again; when it did not (the worker only marked notifications delivered), the memory
stays. A transaction that fails forgets everything too, since what it remembered was
never committed. On PostgreSQL there is no such cheap check, so the state is not used
there (every batch reads what it needs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, select

from mqlengine.domain.scoring import Event, TraitVerdict
from mqlengine.services.qualify import EventCache
from mqlengine.store.sqlite import data_version as sqlite_data_version
from mqlengine.store.tables_ingest import ingest_epoch

_EPOCH = select(ingest_epoch.c.value).where(ingest_epoch.c.id == 1)

Key = tuple[str, str]


class WriterState:
    """Identities, person rows and relevant events of the persons recently written."""

    def __init__(
        self, keep: Callable[[Event], bool] | None = None, *, max_persons: int = 100_000
    ) -> None:
        """``keep``: which events scoring needs (others are not held); ``max_persons``:
        when more persons than this are remembered, everything is forgotten (the cheapest
        bound that keeps memory flat; a busy writer warms up again within seconds)."""
        self.max_persons = max_persons
        self.owner: dict[Key, int] = {}
        self.keys_of: dict[int, set[Key]] = {}
        self.user_ids: dict[int, set[str]] = {}
        self.rows: dict[int, dict[str, Any]] = {}
        self.events = EventCache(keep)
        self.verdicts: dict[int, tuple[object, TraitVerdict]] = {}  # profile → verdict
        self.accounts: dict[int, Any] = {}
        self.domain_accounts: dict[str, int] = {}
        self._version: int | None = None
        self._epoch: int | None = None
        self.stats = {"resets": 0, "foreign_writes": 0, "other_writes": 0}

    # -- validity ----------------------------------------------------------------------
    def begin(self, connection: Connection) -> bool:
        """Check, inside the writer's transaction, that nobody else wrote since the last
        one; forget everything if someone did. False when the state cannot be used."""
        if connection.dialect.name != "sqlite":
            return False
        version = sqlite_data_version(connection)
        if self._version is not None and version != self._version:
            epoch = self._read_epoch(connection)
            if epoch is None or epoch != self._epoch:
                self.stats["foreign_writes"] += 1
                self.reset()
            else:
                self.stats["other_writes"] += 1
            self._epoch = epoch
        elif max(len(self.rows), len(self.events), len(self.verdicts)) > self.max_persons:
            self.reset()
        self._version = version
        return True

    def end(self, connection: Connection) -> None:
        """After the writer's own changes, before its commit: the counter as they left it."""
        self._epoch = self._read_epoch(connection)

    @staticmethod
    def _read_epoch(connection: Connection) -> int | None:
        row = connection.execute(_EPOCH).first()
        return None if row is None else int(row[0])

    def reset(self) -> None:
        """Forget everything (a failed transaction, another writer, the size bound)."""
        self._epoch = None
        self.owner.clear()
        self.keys_of.clear()
        self.user_ids.clear()
        self.rows.clear()
        self.verdicts.clear()
        self.events.clear()
        self.accounts.clear()
        self.domain_accounts.clear()
        self.stats["resets"] += 1

    # -- identities --------------------------------------------------------------------
    def remember_owner(self, key: Key, person_id: int) -> None:
        previous = self.owner.get(key)
        if previous is not None and previous != person_id:
            self.keys_of.get(previous, set()).discard(key)
        self.owner[key] = person_id
        self.keys_of.setdefault(person_id, set()).add(key)

    def forget_person(self, person_id: int) -> None:
        """A person changed in a way the state does not follow (merged, moved stage …)."""
        for key in self.keys_of.pop(person_id, ()):
            if self.owner.get(key) == person_id:
                del self.owner[key]
        self.user_ids.pop(person_id, None)
        self.rows.pop(person_id, None)
        self.verdicts.pop(person_id, None)
        self.events.drop(person_id)

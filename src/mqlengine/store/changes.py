"""Change tokens: has another connection changed what a writer remembers?

The ingest writer keeps, between its own transactions, the rows it last wrote (who owns
which identity, each person's :data:`~mqlengine.domain.person.PERSON_COLUMNS`, each person's scored
events, accounts) so it need not read them back on the next batch. It may trust them only
while nobody else changed them. A :class:`ChangeWatch` tells it, inside each transaction:

* :meth:`~ChangeWatch.begin`, first: may everything still be trusted?
* :meth:`~ChangeWatch.changed`, once the batch knows its persons: which of them did
  another connection change since the writer last saw them? (They are read again.)
* :meth:`~ChangeWatch.end`, after the writer's own changes: remember how it left them.

SQLite (:class:`SqliteWatch`) holds one write lock for the whole file, so one cheap
question decides for everything: ``PRAGMA data_version`` moved (another connection
committed) *and* the ``ingest_epoch`` counter, bumped by triggers on every change to the
remembered rows (migration 0008), moved past what the writer's own last transaction left.
A worker marking notifications delivered moves the first and not the second.

PostgreSQL (:class:`PostgresWatch`) has row locks and several writers at once — two
server processes each with its own memory — so the question is asked per person: each
remembered person carries a token, (``xmin``, ``row_version``, the ids of its
identities) of its row. ``xmin`` names the transaction that wrote the row's current version: every
UPDATE by anybody makes a new one. The ingest path updates every person it touches (it
rescores them), so another writer's events, traits, merges or stage changes for a person
all change its token; an identity added without touching the row changes the ids.
:meth:`PostgresWatch.changed` reads the tokens with ``SELECT … ORDER BY id FOR NO KEY
UPDATE``: the batch's persons are locked until its commit, in one order in every writer
(so two writers never deadlock on persons), and nobody can change them between the check
and the commit. The API's writer reads the tokens without locking (:meth:`ChangeWatch.read`)
and locks its persons only once its events are stored (:meth:`ChangeWatch.claim`): two
server processes touching the same persons then wait for each other during the second
half of a transaction rather than the whole of it. What changed in between is read again
(a person's row and events), or, when the identities the batch resolved against changed,
the transaction is run again (:class:`LostRace`). Account rows carry no token: on
PostgreSQL they are read again every batch (which account a domain names never changes,
so that is kept).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection
from typing import Any

from sqlalchemy import Connection, bindparam, select, text

from mqlengine.store.sqlite import data_version
from mqlengine.store.tables_ingest import ingest_epoch

Token = Any


class LostRace(Exception):
    """Another writer changed the identities of a person this transaction resolved
    messages against before it could claim that person: run the transaction again."""


class ChangeWatch(ABC):
    """Dialect-blind questions a remembering writer asks inside its transaction."""

    per_person = False  # True: changed() tells persons apart; shared rows are not kept

    @abstractmethod
    def begin(self, connection: Connection) -> bool:
        """The transaction's first question: False when anything remembered may have
        changed (the writer forgets everything)."""

    @abstractmethod
    def changed(self, connection: Connection, tokens: dict[int, Token]) -> set[int]:
        """Of these persons (id → token the writer last saw, None if it holds none),
        those another connection changed. Updates ``tokens`` to what it read."""

    @abstractmethod
    def end(self, connection: Connection, person_ids: Collection[int]) -> dict[int, Token]:
        """After the writer's changes, before its commit: the tokens of these persons as
        the writer leaves them."""

    def forget(self) -> None:  # noqa: B027 - optional: a watch that keeps nothing
        """The writer forgot everything (a failed transaction): start over."""

    def read(self, connection: Connection, tokens: dict[int, Token]) -> set[int]:
        """:meth:`changed` without locking the persons, for a writer that claims them
        later (:meth:`claim`). Where the watch cannot tell the two apart, this locks."""
        return self.changed(connection, tokens)

    def claim(self, connection: Connection, tokens: dict[int, Token]) -> tuple[set[int], set[int]]:
        """Lock these persons (id → token :meth:`read` gave) until the commit, in id
        order, and say which another connection changed since: ``(changed, moved)``,
        where ``moved`` ⊆ ``changed`` are those whose identities changed or whose row is
        gone (what the batch resolved against them no longer holds). Nothing to lock or
        tell where :meth:`read` locked already."""
        return set(), set()


class SqliteWatch(ChangeWatch):
    """``data_version`` plus the trigger-kept ``ingest_epoch`` (see the module's doc)."""

    _EPOCH = select(ingest_epoch.c.value).where(ingest_epoch.c.id == 1)

    def __init__(self) -> None:
        self._version: int | None = None
        self._epoch: int | None = None
        self.other_writes = 0  # commits by others that left the remembered rows alone

    def begin(self, connection: Connection) -> bool:
        version = data_version(connection)
        trusted = True
        if self._version is not None and version != self._version:
            epoch = self._read_epoch(connection)
            if epoch is None or epoch != self._epoch:
                trusted = False
            else:
                self.other_writes += 1
            self._epoch = epoch
        self._version = version
        return trusted

    def changed(self, connection: Connection, tokens: dict[int, Token]) -> set[int]:
        return set()  # begin() answered for everything, under the write lock

    def end(self, connection: Connection, person_ids: Collection[int]) -> dict[int, Token]:
        self._epoch = self._read_epoch(connection)
        return {}

    def forget(self) -> None:
        self._epoch = None

    def _read_epoch(self, connection: Connection) -> int | None:
        row = connection.execute(self._EPOCH).first()
        return None if row is None else int(row[0])


# The identities part of a token is the person's identity ids: identities are only ever
# added or moved, never changed in place, so the same ids are the same identities.
_IDENTITY_IDS = (
    "(SELECT string_agg(i.id::text, ',' ORDER BY i.id) FROM identities i WHERE i.person_id = {})"
)
_TOKENS = (
    f"SELECT p.id, p.xmin::text, p.row_version, {_IDENTITY_IDS.format('p.id')} "
    "FROM persons p WHERE p.id = ANY(:ids) ORDER BY p.id"
)
_LOCK_TOKENS = text(_TOKENS + " FOR NO KEY UPDATE OF p").bindparams(bindparam("ids"))
_READ_TOKENS = text(_TOKENS).bindparams(bindparam("ids"))
# The claim locks the rows only: a locking read that waited for another writer sees that
# writer's row, but other tables as they were when the statement began; the identities of
# the persons it changed are read next, by a statement that sees its commit.
_LOCK_ROWS = text(
    "SELECT id, xmin::text, row_version FROM persons WHERE id = ANY(:ids) ORDER BY id "
    "FOR NO KEY UPDATE"
).bindparams(bindparam("ids"))
_IDENTITIES = text(
    f"SELECT p.id, {_IDENTITY_IDS.format('p.id')} FROM persons p WHERE p.id = ANY(:ids)"
).bindparams(bindparam("ids"))


class PostgresWatch(ChangeWatch):
    """A token per remembered person, checked under a row lock (see the module's doc)."""

    per_person = True

    def begin(self, connection: Connection) -> bool:
        return True

    def changed(self, connection: Connection, tokens: dict[int, Token]) -> set[int]:
        if not tokens:
            return set()
        found = {
            row[0]: tuple(row[1:])
            for row in connection.execute(_LOCK_TOKENS, {"ids": sorted(tokens)})
        }
        stale = {pid for pid, seen in tokens.items() if found.get(pid) != seen}
        tokens.update(found)
        return stale

    def read(self, connection: Connection, tokens: dict[int, Token]) -> set[int]:
        if not tokens:
            return set()
        found = {
            row[0]: tuple(row[1:])
            for row in connection.execute(_READ_TOKENS, {"ids": sorted(tokens)})
        }
        stale = {pid for pid, seen in tokens.items() if found.get(pid) != seen}
        tokens.update(found)
        return stale

    def claim(self, connection: Connection, tokens: dict[int, Token]) -> tuple[set[int], set[int]]:
        if not tokens:
            return set(), set()
        rows = {
            row[0]: (row[1], row[2])
            for row in connection.execute(_LOCK_ROWS, {"ids": sorted(tokens)})
        }
        changed = {
            pid
            for pid, seen in tokens.items()
            if seen is None or rows.get(pid) != (seen[0], seen[1])
        }
        if not changed:
            return set(), set()
        now: dict[int, str | None] = {
            row[0]: row[1] for row in connection.execute(_IDENTITIES, {"ids": sorted(changed)})
        }
        moved = {
            pid
            for pid in changed
            if pid not in rows or tokens[pid] is None or now.get(pid) != tokens[pid][2]
        }
        return changed, moved

    def end(self, connection: Connection, person_ids: Collection[int]) -> dict[int, Token]:
        if not person_ids:
            return {}
        rows = connection.execute(_READ_TOKENS, {"ids": sorted(person_ids)})
        return {row[0]: tuple(row[1:]) for row in rows}


def watch_for(connection: Connection) -> ChangeWatch:
    """The change watch of the database behind ``connection``."""
    if connection.dialect.name == "sqlite":
        return SqliteWatch()
    return PostgresWatch()


def lock_persons(connection: Connection, person_ids: Collection[int]) -> None:
    """Lock these persons' rows until the transaction ends, in id order, as every writer
    does before it changes them: two writers then wait for each other instead of each
    holding a row the other needs (a deadlock). SQLite locks the whole file instead."""
    if connection.dialect.name == "sqlite" or not person_ids:
        return
    connection.execute(_LOCK_TOKENS, {"ids": sorted(person_ids)}).all()


# Identities nobody owns yet are claimed with a transaction-level advisory lock per
# (kind, value), taken in one order by every writer: two writers about to create the same
# visitor (or to give one person the same new e-mail) wait for each other at the start of
# the transaction, and the second then finds what the first stored, instead of failing
# at its insert (a unique violation) and running its whole transaction again. Only the
# keys a batch does not find are locked, so a batch of known visitors takes none.
NEW_KEY_LOCKS = 0x4D514C  # the advisory locks' first key: "MQL"
_LOCK_NEW_KEYS = (
    f"SELECT pg_advisory_xact_lock({NEW_KEY_LOCKS}, h) FROM (SELECT DISTINCT "
    "hashtext(k || chr(31) || v) AS h FROM unnest(CAST(%b AS VARCHAR[]), "
    "CAST(%b AS VARCHAR[])) AS t(k, v) ORDER BY h) AS keys"
)


def lock_new_keys(connection: Connection, keys: Collection[tuple[str, str]]) -> bool:
    """Lock these identity keys (kind, value) that have no owner yet until the
    transaction ends, where the database locks rows; True when it did (their owners are
    then read again: a writer that held one has committed it by now)."""
    if connection.dialect.name == "sqlite" or not keys:
        return False
    ordered = sorted(keys)
    connection.exec_driver_sql(
        _LOCK_NEW_KEYS, ([kind for kind, _ in ordered], [value for _, value in ordered])
    ).all()
    return True

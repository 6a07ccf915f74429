"""What the ingest writer remembers between its own transactions.

The HTTP API has one writer thread per process. Between two of its transactions the
writer can keep what it last wrote — who owns which identity, each person's remembered
columns and traits, each person's scoring-relevant events — and skip reading it back on
the next batch. Reads were most of the per-event cost of real-time ingest (on PostgreSQL,
reading back each touched person's whole event history every batch).

The memory is only trusted while nobody else has changed what it holds; the store's
:class:`~mqlengine.store.changes.ChangeWatch` says whether someone did, on either
database: at the start of each transaction (:meth:`WriterState.begin`; on SQLite this
decides for everything), when the batch knows its persons (:meth:`WriterState.check`;
on PostgreSQL, per person, under a row lock), and after the writer's own changes
(:meth:`WriterState.end`). A transaction that fails forgets the persons it touched, since
what it learnt of them was never committed (:meth:`WriterState.rollback`).

The memory is a cache: a person it does not hold is read from the store, so forgetting
one never changes a decision, only what the next batch reads. It is bounded by an
estimate of its bytes (``max_bytes``; ``MQL_WRITER_MEMORY_MB`` for the API's writer): past
it, the persons touched longest ago are forgotten with their identities, rows and events
(:meth:`WriterState.begin`); the scorer's memo of event matches, which grows with every
event, is kept near a quarter of it (the matches asked for longest ago go first). What
makes a forgotten person cheap to take back outlives it: the scorer's memo, and the
verdicts on profiles by their content (cleared past an eighth of the bound), so a person
read back is not judged again when an equal profile was. Only the events whose names
scoring uses are read back. :meth:`WriterState.release` forgets everything (an idle
writer gives its memory back).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from typing import Any, Protocol

from sqlalchemy import Connection

from mqlengine.domain.person import Account, Person
from mqlengine.domain.scoring import Event, TraitVerdict
from mqlengine.ingest.qualify import EventCache, VerdictMemo
from mqlengine.store.changes import ChangeWatch, Token, watch_for

Key = tuple[str, str]

DEFAULT_MAX_BYTES = 96 * 2**20

# What one remembered person costs, roughly, in bytes (CPython 3.11, 64-bit; measured with
# tracemalloc under the ingest bench's traffic). Only a bound hangs on it, so it need only
# be proportional: each person's entries in the per-person maps, row tuple, change token
# and key set; each identity (key tuple, value, owner slot); each remembered event (object,
# id, time, properties); each entry of the traits and profile.
PERSON_BYTES = 1_000
KEY_BYTES = 250
EVENT_BYTES = 650
ITEM_BYTES = 140
MEMO_ENTRY_BYTES = 150  # an event id's matched rules in the scorer's memo
ACCOUNT_LIMIT = 50_000  # accounts and domains remembered, each (few: one per company)


_NO_USER_IDS: frozenset[str] = frozenset()


class _UserIds(dict[int, AbstractSet[str]]):
    """User ids by person; the empty set of an anonymous visitor (most of them) is kept
    as one shared frozenset rather than a set of its own each."""

    def __setitem__(self, person_id: int, user_ids: AbstractSet[str]) -> None:
        super().__setitem__(person_id, user_ids if user_ids else _NO_USER_IDS)


class MatchMemo(Protocol):
    """The scorer's memo of which rules each event matches (pure: clearing it changes
    nothing but the time the next match takes)."""

    def memo_size(self) -> int: ...

    def forget_matches(self) -> None: ...

    def trim_matches(self, limit: int) -> bool: ...


def _items(mapping: Mapping[str, Any] | None) -> int:
    """Entries of a traits or profile mapping, one level of nesting counted."""
    if not mapping:
        return 0
    count = len(mapping)
    for value in mapping.values():
        if isinstance(value, (dict, list)):
            count += len(value)
    return count


class WriterState:
    """Identities, person rows and relevant events of the persons recently written."""

    def __init__(
        self,
        keep: Callable[[Event], bool] | None = None,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        matches: MatchMemo | None = None,
        late_claim: bool = False,
    ) -> None:
        """``keep``: which events scoring needs (others are not held); ``max_bytes``: the
        bound of the estimated size, past which the persons touched longest ago are
        forgotten; ``matches``: the scorer's memo, kept near a quarter of the bound;
        ``late_claim``: check the batch's persons without locking them and claim them once
        its events are stored (:meth:`claim`; a writer that runs a transaction again on
        :class:`~mqlengine.store.changes.LostRace`)."""
        self.late_claim = late_claim
        self._seen: dict[int, Token] = {}  # tokens read unlocked in this transaction
        self.max_bytes = max_bytes
        self.matches = matches
        self._recent: OrderedDict[int, int] = OrderedDict()  # person → bytes, oldest first
        self.bytes = 0  # the estimated size of the persons in ``_recent``
        self.owner: dict[Key, int] = {}
        self.keys_of: dict[int, tuple[Key, ...]] = {}  # tuples: a set costs 216 bytes
        self.user_ids: dict[int, AbstractSet[str]] = _UserIds()
        self.rows: dict[int, Person] = {}
        self.events = EventCache(keep)
        self.verdicts: dict[int, tuple[object, TraitVerdict]] = {}  # profile → verdict
        # verdicts by profile content: a person read back is not judged again (kept
        # across evictions and other writers' changes, as it depends on content only)
        self.judged = VerdictMemo()
        self.accounts: dict[int, Account] = {}
        self.domain_accounts: dict[str, int] = {}
        self._watch: ChangeWatch | None = None
        self._tokens: dict[int, Token] = {}  # person → change token as last left
        self._touched: set[int] = set()  # persons checked or learnt in this transaction
        self._left: set[int] = set()  # … and in the last one, until the next begins
        self.stats = {
            "resets": 0,
            "foreign_writes": 0,
            "other_writes": 0,
            "stale_persons": 0,
            "evicted": 0,  # persons forgotten to stay within ``max_bytes``
            "memo_clears": 0,  # times the older half of the scorer's memo was dropped
            "verdict_clears": 0,  # times the memo of verdicts by profile was cleared
        }

    # -- validity ----------------------------------------------------------------------
    def begin(self, connection: Connection) -> bool:
        """Check, inside the writer's transaction, that nobody else changed what is
        remembered since the last one; forget what they did change. True: the state may
        be used in this transaction."""
        if self._watch is None:
            self._watch = watch_for(connection)
        watch = self._watch
        self._touched = set()
        self._left = set()
        self._seen = {}
        if not watch.begin(connection):
            self.stats["foreign_writes"] += 1
            self.reset()
        else:
            self._bound()
        self.stats["other_writes"] = getattr(watch, "other_writes", 0)
        if watch.per_person:
            # Account rows carry no change token: read again in every transaction. Which
            # account a domain names stays: accounts are never deleted, nor their domain
            # changed.
            self.accounts.clear()
        return True

    def check(self, connection: Connection, person_ids: Iterable[int]) -> set[int]:
        """The batch's (existing) persons, before it reads or changes them: forgets those
        another connection changed and returns them. On PostgreSQL their rows stay
        locked until the commit (in id order, as every writer locks them) — or, with
        ``late_claim``, are locked by :meth:`claim`."""
        assert self._watch is not None, "begin() first"
        ids = set(person_ids)
        tokens = {pid: self._tokens.get(pid) for pid in ids}
        if self.late_claim:
            stale = self._watch.read(connection, tokens)
            self._seen.update(tokens)
        else:
            stale = self._watch.changed(connection, tokens)
        self._touched |= ids
        forgotten = {pid for pid in stale if self._holds(pid)}
        for pid in forgotten:
            self.forget_person(pid)
        self.stats["stale_persons"] += len(forgotten)
        return forgotten

    def claim(self, connection: Connection, person_ids: Iterable[int]) -> set[int]:
        """With ``late_claim``: lock the persons :meth:`check` read (in id order, until
        the commit), forget those another connection changed since (their rows and
        events are read again), and return those whose identities it changed."""
        assert self._watch is not None, "begin() first"
        tokens = {pid: self._seen.get(pid) for pid in person_ids}
        changed, moved = self._watch.claim(connection, tokens)
        forgotten = {pid for pid in changed if self._holds(pid)}
        for pid in forgotten:
            self.forget_person(pid)
        self.stats["stale_persons"] += len(forgotten)
        return moved

    def end(self, connection: Connection) -> None:
        """After the writer's own changes, before its commit: how they left what is
        remembered."""
        assert self._watch is not None, "begin() first"
        self._tokens.update(self._watch.end(connection, self._touched))
        self._left, self._touched = self._touched, set()
        for person_id in self._left:
            self._used(person_id)

    # -- the bound ---------------------------------------------------------------------
    def size_of(self, person_id: int) -> int:
        """The estimated bytes the memory holds for one person."""
        size = PERSON_BYTES + KEY_BYTES * len(self.keys_of.get(person_id, ()))
        events = self.events.get(person_id)
        if events:
            size += EVENT_BYTES * len(events)
        row = self.rows.get(person_id)
        if row is not None:
            size += ITEM_BYTES * (_items(row.profile) + _items(row.traits))
        return size

    def _used(self, person_id: int) -> None:
        """The person was just written: now the most recently used, at its new size."""
        if not self._holds(person_id):
            self.bytes -= self._recent.pop(person_id, 0)
            return
        size = self.size_of(person_id)
        self.bytes += size - self._recent.get(person_id, 0)
        self._recent[person_id] = size
        self._recent.move_to_end(person_id)

    def _bound(self) -> None:
        """Keep within ``max_bytes``: the scorer's memo near a quarter of it (its older
        half dropped), the verdicts by profile cleared past an eighth, then forget the
        persons touched longest ago until the rest fits."""
        memo_bytes = 0
        if self.matches is not None:
            if self.matches.trim_matches(self.max_bytes // 4 // MEMO_ENTRY_BYTES):
                self.stats["memo_clears"] += 1
            memo_bytes = self.matches.memo_size() * MEMO_ENTRY_BYTES
        if self.judged.bytes > self.max_bytes // 8:
            self.judged.clear()
            self.stats["verdict_clears"] += 1
        if len(self.accounts) > ACCOUNT_LIMIT or len(self.domain_accounts) > ACCOUNT_LIMIT:
            self.accounts.clear()
            self.domain_accounts.clear()
        budget = self.max_bytes - memo_bytes - self.judged.bytes
        while self.bytes > budget and self._recent:
            person_id = next(iter(self._recent))
            self.forget_person(person_id)
            self.stats["evicted"] += 1

    def release(self) -> None:
        """Forget everything, the scorer's memo too: the writer is idle, and what it holds
        is better given back than kept for a batch that may not come."""
        self.reset()
        self.judged.clear()
        if self.matches is not None:
            self.matches.forget_matches()

    def rollback(self) -> None:
        """The writer's transaction failed (a lost race with another writer, an error,
        the commit itself): forget what it touched — none of that was committed — and
        keep the rest, which it did not change. Two server processes on PostgreSQL lose
        a race now and then (both create the same new visitor); forgetting everything
        each time would cost the whole memory."""
        for person_id in self._touched | self._left:
            self.forget_person(person_id)
        self._touched, self._left = set(), set()
        self.accounts.clear()
        self.domain_accounts.clear()  # may name an account that was never committed
        if self._watch is not None:
            self._watch.forget()

    def _holds(self, person_id: int) -> bool:
        return (
            person_id in self.rows
            or person_id in self.keys_of
            or person_id in self.user_ids
            or person_id in self.verdicts
            or self.events.knows(person_id)
        )

    def reset(self) -> None:
        """Forget everything (a failed transaction, another writer, the size bound)."""
        if self._watch is not None:
            self._watch.forget()
        self._tokens.clear()
        self._touched, self._left = set(), set()
        self.owner.clear()
        self.keys_of.clear()
        self.user_ids.clear()
        self.rows.clear()
        self.verdicts.clear()
        self.events.clear()
        self.accounts.clear()
        self.domain_accounts.clear()
        self._recent.clear()
        self.bytes = 0
        self.stats["resets"] += 1

    def others_wrote(self) -> None:
        """The caller changed persons, identities or accounts outside the pipeline on a
        connection the pipeline also uses, where ``data_version`` cannot tell (a
        single-process replay between its batches): forget all of that. Events stay, since
        only the pipeline adds them and it drops those of persons it merges."""
        self._tokens.clear()
        self.owner.clear()
        self.keys_of.clear()
        self.user_ids.clear()
        self.rows.clear()
        self.verdicts.clear()
        self.accounts.clear()
        self.domain_accounts.clear()

    # -- identities --------------------------------------------------------------------
    def remember_owner(self, key: Key, person_id: int) -> None:
        previous = self.owner.get(key)
        if previous is not None and previous != person_id:
            kept = tuple(k for k in self.keys_of.get(previous, ()) if k != key)
            if kept:
                self.keys_of[previous] = kept
            else:
                self.keys_of.pop(previous, None)
        self.owner[key] = person_id
        keys = self.keys_of.get(person_id, ())
        if key not in keys:
            self.keys_of[person_id] = (*keys, key)
        self._touched.add(person_id)

    def forget_person(self, person_id: int) -> None:
        """A person changed in a way the state does not follow (merged, moved stage …)."""
        for key in self.keys_of.pop(person_id, ()):
            if self.owner.get(key) == person_id:
                del self.owner[key]
        self.user_ids.pop(person_id, None)
        self._tokens.pop(person_id, None)
        self.rows.pop(person_id, None)
        self.verdicts.pop(person_id, None)
        self.events.drop(person_id)
        self.bytes -= self._recent.pop(person_id, 0)

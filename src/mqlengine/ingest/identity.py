"""Identity resolution: anonymous visitor → known person → account.

Identities are (kind, value) pairs — ``user_id``, ``anonymous_id``, ``email``, ``phone``
(E.164), ``external_id`` — each owned by exactly one person. A message whose identities
belong to several persons proves they are one: they are merged deterministically into the
oldest (lowest id), the move is recorded in ``merges`` so it can be undone, and the survivor
is rescored from the union of events (never by adding scores). Two persons that each carry
a *different* user id are never merged: a shared browser is not the same human, and two
persons whose merge was undone (``mql unmerge``) are never merged again automatically.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, and_, or_, select, update

from mqlengine.domain.attribution import Attribution
from mqlengine.ingest.messages import Message
from mqlengine.ingest.profile import fill_missing
from mqlengine.ingest.signals import normalize_phone
from mqlengine.ingest.validation import cached_check_email
from mqlengine.store import repo
from mqlengine.store.changes import LostRace, lock_new_keys, lock_persons
from mqlengine.store.dialect import IdAllocator, bulk_insert
from mqlengine.store.tables import events, identities, merges, persons, stage_history

if TYPE_CHECKING:
    from mqlengine.ingest.writerstate import WriterState

Key = tuple[str, str]
STRONG = "user_id"


def email_identity(email: str, gmail_normalize: bool = False) -> str | None:
    """An e-mail address as its identity value (trimmed, lower-cased, Gmail-normalised on
    request), or None when it is no valid address."""
    check = cached_check_email(email, gmail_normalize)
    return check.normalized if check.valid and check.normalized else None


def identity_keys(message: Message, *, gmail_normalize: bool = False) -> list[Key]:
    keys: list[Key] = []
    if message.user_id:
        keys.append(("user_id", message.user_id))
    if message.anonymous_id:
        keys.append(("anonymous_id", message.anonymous_id))
    if message.type == "alias" and message.previous_id:
        keys.append(("user_id", message.previous_id))
        keys.append(("anonymous_id", message.previous_id))
    if message.type != "group" and message.traits:
        traits = message.traits
        email = traits.get("email")
        if isinstance(email, str) and email.strip():
            normalized = email_identity(email, gmail_normalize)
            if normalized:
                keys.append(("email", normalized))
        phone = traits.get("phone")
        if isinstance(phone, str | int) and str(phone).strip():
            region = traits.get("country") if isinstance(traits.get("country"), str) else None
            normalized = normalize_phone(str(phone), region)
            if normalized:
                keys.append(("phone", normalized))
        for name in ("external_id", "crm_id"):
            value = traits.get(name)
            if isinstance(value, str | int) and str(value).strip():
                keys.append(("external_id", str(value).strip()))
    return keys


class IdentityGraph:
    """Batch-scoped view of identities with write-through to the store.

    Identities always point at a live person (a merge moves them), so ``owner`` needs no
    ``merged_into`` chasing.
    """

    def __init__(
        self, connection: Connection, now: datetime, state: WriterState | None = None
    ) -> None:
        """``state``: what the writer already knows of identities (see
        :mod:`mqlengine.ingest.writerstate`); keys it knows are not read again."""
        self.connection = connection
        self.now = now
        self.state = state
        self.owner: dict[Key, int] = {}
        self.user_ids: dict[int, set[str]] = {}
        self.merged: list[tuple[int, int]] = []  # (survivor, merged)
        self.survivor_of: dict[int, int] = {}
        self.created: dict[int, dict[str, Any]] = {}  # rows of the persons made here
        # Written in bulk by flush() (before a merge reads them, and at the end of a batch).
        self.pending_persons: list[dict[str, Any]] = []
        self.pending_identities: list[dict[str, Any]] = []
        self.pending_history: list[dict[str, Any]] = []
        self._ids: IdAllocator | None = None
        self._expected_new = 0
        self._unclaimed: set[int] = set()  # found, checked, not locked yet (late_claim)

    def prefetch(self, keys: Iterable[Key]) -> None:
        """Load the owners of these keys, then claim their persons: lock them (on
        PostgreSQL, in id order, until the commit: two writers never hold each other's
        persons) and check that the writer's memory of them still holds — keys whose
        remembered owner another connection changed are read again."""
        wanted = {k for k in keys if k not in self.owner}
        self._load(wanted, self.state.owner if self.state is not None else {})
        unowned = {k for k in wanted if k not in self.owner}
        if lock_new_keys(self.connection, unowned):
            self._load(unowned, {})  # another writer may have stored some meanwhile
        claimed: set[int] = set()
        persons = {self.owner[k] for k in wanted if k in self.owner}
        while persons:
            claimed |= persons
            if self.state is None:
                lock_persons(self.connection, persons)
                break
            stale = self.state.check(self.connection, persons)
            again = {k for k in wanted if self.owner.get(k) in stale}
            for key in again:
                del self.owner[key]
            self._load(again, {})
            persons = {self.owner[k] for k in again if k in self.owner} - claimed
        self._unclaimed |= claimed
        if self.state is None or not self.state.late_claim:
            self._unclaimed.clear()  # locked above, or by the check

    def claim(self) -> None:
        """Lock the persons :meth:`prefetch` found, when the writer's memory checked them
        without locking (``late_claim``): in id order, until the commit. Called once the
        batch's events are stored, and before the first change to one of them (a merge).
        Raises :class:`~mqlengine.store.changes.LostRace` when another writer changed the
        identities of one of them in between: what this batch resolved no longer holds."""
        if not self._unclaimed or self.state is None:
            return
        persons, self._unclaimed = self._unclaimed, set()
        moved = self.state.claim(self.connection, persons)
        if moved:
            raise LostRace(
                f"another writer changed the identities of {len(moved)} person(s) this "
                "batch resolved messages against"
            )

    def expect_new(self, groups: Iterable[Iterable[Key]]) -> None:
        """After :meth:`prefetch`: the messages' keys, to estimate how many persons this
        batch may create (messages none of whose keys has an owner), so their ids are
        allocated in one go."""
        unowned = {tuple(g) for g in groups}
        self._expected_new = sum(1 for g in unowned if not any(k in self.owner for k in g))

    def _load_user_ids(self, person_ids: Iterable[int]) -> None:
        """The user ids of these persons, for those neither this batch nor the writer's
        memory knows: one query per chunk rather than one per person. Read only for the
        persons a decision needs them for (a new user id, a merge): most messages of a
        known person (page views, tracks) need none, so a person the writer's memory
        forgot costs no read of them."""
        remembered = self.state.user_ids if self.state is not None else {}
        missing = []
        for pid in person_ids:
            if pid in self.user_ids:
                continue
            known = remembered.get(pid)
            if known is not None:
                self.user_ids[pid] = set(known)
            else:
                missing.append(pid)
        for part in repo.chunks(sorted(set(missing))):
            for pid in part:
                self.user_ids[pid] = set()
            query = select(identities.c.person_id, identities.c.value).where(
                identities.c.kind == STRONG, identities.c.person_id.in_(part)
            )
            for row in self.connection.execute(query):
                self.user_ids[row.person_id].add(row.value)

    def _load(self, keys: set[Key], known: dict[Key, int]) -> None:
        """Owners of ``keys`` from ``known`` (the writer's memory), else from the store:
        one ``kind = ? AND value IN (…)`` query per kind and chunk, which uses the unique
        (kind, value) index (a row-value IN does not, on SQLite: it scans the table)."""
        by_kind: dict[str, list[str]] = {}
        for key in keys:
            owner = known.get(key)
            if owner is not None:
                self.owner[key] = owner
            else:
                by_kind.setdefault(key[0], []).append(key[1])
        if by_kind and self.connection.dialect.name == "postgresql":
            # every kind in one statement: the (kind, value) pairs as two arrays, each pair
            # found through the unique (kind, value) index
            pairs = sorted((kind, value) for kind, values in by_kind.items() for value in values)
            found = self.connection.exec_driver_sql(
                "SELECT i.kind, i.value, i.person_id FROM identities i JOIN "
                "unnest(CAST(%b AS VARCHAR[]), CAST(%b AS VARCHAR[])) AS k(kind, value) "
                "ON i.kind = k.kind AND i.value = k.value",
                ([kind for kind, _ in pairs], [value for _, value in pairs]),
            )
            for kind, value, person_id in found:
                self.owner[(kind, value)] = person_id
            return
        for kind, values in sorted(by_kind.items()):
            for part in repo.chunks(sorted(values)):
                query = select(identities.c.value, identities.c.person_id).where(
                    identities.c.kind == kind, identities.c.value.in_(part)
                )
                for row in self.connection.execute(query):
                    self.owner[(kind, row.value)] = row.person_id

    def _user_ids_of(self, person_id: int) -> set[str]:
        if person_id not in self.user_ids and self.state is not None:
            remembered = self.state.user_ids.get(person_id)
            if remembered is not None:
                self.user_ids[person_id] = set(remembered)
        if person_id not in self.user_ids:
            rows = self.connection.execute(
                select(identities.c.value).where(
                    identities.c.person_id == person_id, identities.c.kind == STRONG
                )
            )
            self.user_ids[person_id] = {r.value for r in rows}
        return self.user_ids[person_id]

    def _attach(self, person_id: int, key: Key) -> None:
        if key in self.owner:
            return  # ours already, or owned by someone we chose not to merge with
        self.pending_identities.append(
            {"person_id": person_id, "kind": key[0], "value": key[1], "created_at": self.now}
        )
        self.owner[key] = person_id
        if key[0] == STRONG:
            self._user_ids_of(person_id).add(key[1])

    def flush(self) -> None:
        """Write the persons, identities and history rows collected so far (one statement
        each; persons first, the others refer to them)."""
        if self.pending_persons:
            bulk_insert(self.connection, persons, self.pending_persons)
            self.pending_persons = []
        if self.pending_identities:
            for row in self.pending_identities:
                row["person_id"] = self.live(row["person_id"])
            # in (kind, value) order, as every writer inserts them: two writers creating
            # the same visitors wait for each other instead of deadlocking
            self.pending_identities.sort(key=lambda row: (row["kind"], row["value"]))
            bulk_insert(self.connection, identities, self.pending_identities)
            self.pending_identities = []
        if self.pending_history:
            bulk_insert(self.connection, stage_history, self.pending_history)
            self.pending_history = []

    def create_person(self, message: Message, channel: Attribution) -> int:
        """A new person with an id allocated now; the row is written by :meth:`flush`."""
        at = message.timestamp
        if self._ids is None:
            self._ids = IdAllocator(self.connection, persons, expected=self._expected_new)
        person_id = self._ids.next()
        row: dict[str, Any] = {
            "id": person_id,
            "traits": {},
            "profile": {},
            "flags": [],
            "first_seen_at": at,
            "last_seen_at": at,
            "stage": "lead",
            "stage_changed_at": at,
            "created_at": self.now,
            "updated_at": self.now,
            "row_version": 1,
            "fit_score": 0.0,
            "intent_score": 0.0,
            "total_score": 0.0,
            "channel": channel.channel,
            "source": channel.source,
            "campaign": channel.campaign,
        }
        self.pending_persons.append(row)
        self.created[person_id] = row
        self.user_ids[person_id] = set()
        self.pending_history.append(
            {
                "person_id": person_id,
                "from_stage": None,
                "to_stage": "lead",
                "changed_at": at,
                "reason": "created",
                "actor": "system",
                "action": None,
                "definition_version": None,
                "mql_type": None,
                "reactivated": False,
                "amount": None,
                "score_card": None,
                "recorded_at": self.now,
            }
        )
        return person_id

    def resolve(self, message: Message, keys: list[Key], channel: Attribution) -> int:
        """The person this message belongs to, creating or merging as the keys prove."""
        owners = sorted({self.owner[k] for k in keys if k in self.owner})
        if (
            message.user_id
            and message.type != "alias"
            and ("user_id", message.user_id) not in self.owner
        ):
            # A new user id can claim anonymous history, not a person who is someone else.
            self._load_user_ids(owners)
            owners = [o for o in owners if not self._user_ids_of(o)]
        if not owners:
            person_id = self.create_person(message, channel)
        elif len(owners) == 1:
            person_id = owners[0]
        else:
            person_id = self._merge_candidates(message, owners)
        for key in keys:
            self._attach(person_id, key)
        return person_id

    def _merge_candidates(self, message: Message, owners: list[int]) -> int:
        if message.user_id and ("user_id", message.user_id) in self.owner:
            anchor = self.owner[("user_id", message.user_id)]
        else:
            anchor = owners[0]
        self._load_user_ids(owners)
        survivor = anchor
        for other in owners:
            if other == anchor:
                continue
            mine, theirs = self._user_ids_of(survivor), self._user_ids_of(other)
            if mine and theirs and not (mine & theirs) and message.type != "alias":
                continue  # conflicting user ids: keep them apart
            if self._split_before(survivor, other):
                continue  # a person said these are two people: respect the unmerge
            first, second = sorted((survivor, other))
            self.merge(first, second, reason=f"{message.type}:{message.message_id}")
            survivor = first
        return survivor

    def _split_before(self, a: int, b: int) -> bool:
        undone = self.connection.execute(
            select(merges.c.id)
            .where(
                merges.c.undone_at.is_not(None),
                or_(
                    and_(merges.c.survivor_id == a, merges.c.merged_id == b),
                    and_(merges.c.survivor_id == b, merges.c.merged_id == a),
                ),
            )
            .limit(1)
        ).first()
        return undone is not None

    def merge(self, survivor: int, merged: int, *, reason: str) -> None:
        """Move everything of ``merged`` to ``survivor`` and record what moved."""
        self.claim()  # every person the batch found is locked before one is changed
        self.flush()
        self._load_user_ids((survivor, merged))  # before their identities move
        conn = self.connection
        identity_ids = [
            r.id
            for r in conn.execute(select(identities.c.id).where(identities.c.person_id == merged))
        ]
        event_ids = [
            r.id for r in conn.execute(select(events.c.id).where(events.c.person_id == merged))
        ]
        conn.execute(
            update(identities).where(identities.c.person_id == merged).values(person_id=survivor)
        )
        conn.execute(update(events).where(events.c.person_id == merged).values(person_id=survivor))
        rows = repo.persons_by_id(conn, [survivor, merged])
        keep, gone = rows[survivor], rows[merged]
        values: dict[str, Any] = {
            "traits": fill_missing(keep["traits"] or {}, gone["traits"] or {}),
            "flags": sorted(set(keep["flags"] or []) | set(gone["flags"] or [])),
            "first_seen_at": min(keep["first_seen_at"], gone["first_seen_at"]),
            "last_seen_at": max(keep["last_seen_at"], gone["last_seen_at"]),
            "updated_at": self.now,
        }
        for column in ("account_id", "email", "channel", "source", "campaign"):
            if keep[column] is None and gone[column] is not None:
                values[column] = gone[column]
        if gone["first_seen_at"] < keep["first_seen_at"] and gone["channel"]:
            values.update(channel=gone["channel"], source=gone["source"], campaign=gone["campaign"])
        # What the survivor had before, for the columns this merge changes: an unmerge
        # puts back what still holds the merged person's value.
        before = {
            column: _plain(keep[column])
            for column in (
                "account_id",
                "email",
                "channel",
                "source",
                "campaign",
                "first_seen_at",
                "last_seen_at",
            )
            if column in values and values[column] != keep[column]
        }
        after = {column: _plain(values[column]) for column in before}
        repo.bump_person(conn, survivor, values)
        repo.bump_person(conn, merged, {"merged_into": survivor, "updated_at": self.now})
        conn.execute(
            merges.insert().values(
                survivor_id=survivor,
                merged_id=merged,
                reason=reason,
                moved={
                    "identities": identity_ids,
                    "events": event_ids,
                    "survivor_before": before,
                    "survivor_after": after,
                },
                merged_at=self.now,
            )
        )
        for key, owner in list(self.owner.items()):
            if owner == merged:
                self.owner[key] = survivor
        self.user_ids[survivor] = self._user_ids_of(survivor) | self.user_ids.pop(merged, set())
        self.merged.append((survivor, merged))
        for earlier, kept in list(self.survivor_of.items()):
            if kept == merged:
                self.survivor_of[earlier] = survivor
        self.survivor_of[merged] = survivor

    def live(self, person_id: int) -> int:
        return self.survivor_of.get(person_id, person_id)

    def remember(self) -> None:
        """After the batch: hand what it learnt to the writer's state (merged persons are
        forgotten there, their identities now point at the survivor)."""
        state = self.state
        if state is None:
            return
        for survivor, merged in self.merged:
            state.forget_person(merged)
            state.forget_person(survivor)
        for key, owner in self.owner.items():
            state.remember_owner(key, self.live(owner))
        for person_id, user_ids in self.user_ids.items():
            if person_id not in self.survivor_of:
                state.user_ids[person_id] = set(user_ids)


def _plain(value: Any) -> Any:
    """A JSON-safe copy of a column value (times as ISO strings)."""
    return value.isoformat() if isinstance(value, datetime) else value

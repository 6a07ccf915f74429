"""The write path as named stages over one :class:`~mqlengine.ingest.batch.Batch`.

parse → dedupe → resolve identities → store events → (claim persons) → update people
and accounts → qualify (score, lifecycle, handoff, outbox). Each stage is a function of
the batch and the :class:`Context` (the definition and what it is served with); it reads
what the earlier stages left and adds its part. What the writer remembers between
transactions is read and filled through ``batch.memory`` only, so the stages are the same
whether a long-lived memory is trusted for this transaction or a fresh one serves this
batch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import bindparam, update

from mqlengine.domain.attribution import channel_of, named_channel
from mqlengine.domain.person import Account, Person
from mqlengine.domain.rules import Definition
from mqlengine.domain.scoring import Event, Scorer
from mqlengine.ingest.batch import Batch, Rejection
from mqlengine.ingest.consent import apply_consent, trait_heads
from mqlengine.ingest.firmographics import Enricher
from mqlengine.ingest.identity import IdentityGraph, identity_keys
from mqlengine.ingest.messages import Message, MessageError, parse_message
from mqlengine.ingest.profile import build_profile, deep_merge
from mqlengine.ingest.qualify import Handoff, rescore
from mqlengine.ingest.validation import cached_check_email, check_message
from mqlengine.store import repo
from mqlengine.store.dialect import bulk_update, insert_ignoring_conflicts
from mqlengine.store.repositories import accounts as account_store
from mqlengine.store.repositories.persons import persons_by_id
from mqlengine.store.secretbox import SecretBox
from mqlengine.store.tables import events, persons, stage_history

# A person's e-mail domain names their company, except for these kinds of mailbox.
NO_ACCOUNT_FLAGS = frozenset({"free_mail", "disposable", "edu_domain", "invalid"})

T = TypeVar("T")


@dataclass(frozen=True)
class Context:
    """What every stage reads besides the batch: the definition in force, its scorer,
    the enrichers, and what a stage change sets off."""

    definition: Definition
    scorer: Scorer
    enrichers: tuple[Enricher, ...]
    gmail_normalize: bool
    ignore_flags: frozenset[str]
    handoff: Handoff | None
    # keys the digests of identifiers erased with suppression (None: nothing suppressed)
    suppression: SecretBox | None = None

    def enrich(self, domain: str) -> Mapping[str, Any] | None:
        """Firmographics of a domain: the first provider that knows it wins."""
        for provider in self.enrichers:
            found = provider.enrich(domain)
            if found:
                return found
        return None

    def profile_for(
        self, traits: Mapping[str, Any], flags: Sequence[str], account: Account | None
    ) -> dict[str, Any]:
        """The scoring profile of a person: traits + title parsing + account + firmographics."""
        domain = account.domain if account is not None else None
        return build_profile(
            traits,
            account_traits=account.traits if account is not None else None,
            signal_flags=sorted(flags),
            firmographics=self.enrich(domain) if domain else None,
            gmail_normalize=self.gmail_normalize,
            ignore_flags=self.ignore_flags,
        )


# -- parse ---------------------------------------------------------------------------------
def parse(
    context: Context,
    raw_messages: Sequence[Any],
    received_at: datetime,
    default_type: str | None = None,
) -> tuple[list[tuple[int, Message, frozenset[str]]], list[Rejection]]:
    """Parse and validate: (index, message, signal flags) for good ones, rejections."""
    good: list[tuple[int, Message, frozenset[str]]] = []
    bad: list[Rejection] = []
    policy = context.definition.validation
    consent = context.definition.consent
    heads = trait_heads(consent)
    for index, raw in enumerate(raw_messages):
        try:
            message = parse_message(raw, received_at=received_at, default_type=default_type)
        except MessageError as error:
            message_id = raw.get("messageId") if isinstance(raw, dict) else None
            if not isinstance(message_id, str):
                message_id = None
            bad.append(Rejection(index, message_id, error.field, error.reason))
            continue
        verdict = check_message(message, policy, gmail_normalize=context.gmail_normalize)
        if verdict.rejection is not None:
            where, reason = verdict.rejection
            bad.append(Rejection(index, message.message_id, where, reason, "rejected_by_check"))
            continue
        try:
            message = apply_consent(message, consent, heads)
        except MessageError as error:
            bad.append(Rejection(index, message.message_id, error.field, error.reason))
            continue
        good.append((index, message, verdict.flags))
    return good, bad


# -- dedupe --------------------------------------------------------------------------------
def dedupe(batch: Batch) -> None:
    """Drop messages already stored, or repeated inside this batch (same answer, no-op)."""
    seen = repo.known_message_ids(batch.connection, [m.message_id for _, m, _ in batch.good])
    result = batch.result
    for index, message, signal_flags in batch.good:
        if message.message_id in seen:
            result.duplicates += 1
            result.duplicate_indexes.append(index)
            continue
        seen.add(message.message_id)
        batch.fresh.append((message, signal_flags))


# -- suppress ----------------------------------------------------------------------------------
def suppress(context: Context, batch: Batch) -> None:
    """Drop messages that name an identifier erased with suppression (only keyed hashes
    of those are kept): they are acknowledged and stored nowhere."""
    box = context.suppression
    if box is None or not batch.fresh:
        return
    gmail = context.gmail_normalize
    digests = [
        [box.digest(kind, value) for kind, value in identity_keys(m, gmail_normalize=gmail)]
        for m, _ in batch.fresh
    ]
    found = repo.suppressed_digests(batch.connection, [d for ds in digests for d in ds])
    if not found:
        return
    kept = [item for item, ds in zip(batch.fresh, digests, strict=True) if found.isdisjoint(ds)]
    batch.result.suppressed += len(batch.fresh) - len(kept)
    batch.fresh = kept


# -- resolve identities ----------------------------------------------------------------------
def resolve(context: Context, batch: Batch) -> None:
    """Find, create or merge the person of each message, and collect per person what the
    messages say: traits, flags, group calls, the newest event, the event rows."""
    memory = batch.memory
    cache = memory.events
    graph = batch.graph = IdentityGraph(batch.connection, batch.now, memory)
    gmail = context.gmail_normalize
    keyed = [(m, identity_keys(m, gmail_normalize=gmail), f) for m, f in batch.fresh]
    graph.prefetch(k for _, ks, _ in keyed for k in ks)
    graph.expect_new(ks for _, ks, _ in keyed)
    relevant = context.scorer.relevant
    for message, keys, flags in keyed:
        person_id = graph.resolve(message, keys, channel_of(message.context, message.traits))
        if person_id in graph.created and not cache.knows(person_id):
            cache.put(person_id, [])  # a new person: nothing scored before this batch
        if message.type == "group":
            batch.groups[person_id] = message
        elif message.traits:
            previous_traits = batch.trait_updates.get(person_id, {})
            batch.trait_updates[person_id] = deep_merge(previous_traits, message.traits)
        if flags:
            batch.flag_updates.setdefault(person_id, set()).update(flags)
        previous = batch.touched.get(person_id)
        if previous is None or message.timestamp > previous:
            batch.touched[person_id] = message.timestamp
        batch.event_rows.append(_event_row(message, person_id))
        if message.scored:
            event = Event(message.message_id, message.name, message.timestamp, message.properties)
            cache.add(person_id, event)
            if batch.replay and relevant(event):
                batch.relevant.add(person_id)
    graph.flush()
    _follow_merges(batch, graph)


def _event_row(message: Message, person_id: int) -> dict[str, Any]:
    properties = message.traits if message.type in ("identify", "group") else message.properties
    return {
        "message_id": message.message_id,
        "person_id": person_id,
        "type": message.type,
        "name": message.name,
        "anonymous_id": message.anonymous_id,
        "user_id": message.user_id,
        "properties": properties,
        "context": message.context,
        "timestamp": message.timestamp,
        "received_at": message.received_at,
        "consent_withdrawn": message.untracked,
    }


def _follow(
    updates: dict[int, T], live: Callable[[int], int], combine: Callable[[T, T], T]
) -> dict[int, T]:
    """Re-key per-person updates to the survivors of merges made in this batch."""
    result: dict[int, T] = {}
    for person_id, value in updates.items():
        target = live(person_id)
        result[target] = combine(result[target], value) if target in result else value
    return result


def _follow_merges(batch: Batch, graph: IdentityGraph) -> None:
    """What the batch collected for persons merged away later in it goes to the survivor."""
    batch.result.merges = list(graph.merged)
    if not graph.merged:
        return
    for survivor, merged in graph.merged:
        batch.touched.pop(merged, None)
        batch.touched.setdefault(survivor, batch.now)
        batch.memory.events.drop(survivor)
        batch.memory.events.drop(merged)
    live = graph.live
    for row in batch.event_rows:
        row["person_id"] = live(row["person_id"])
    batch.trait_updates = _follow(batch.trait_updates, live, deep_merge)
    batch.flag_updates = _follow(batch.flag_updates, live, lambda a, b: a | b)
    batch.groups = {live(pid): m for pid, m in batch.groups.items()}
    batch.relevant = {live(pid) for pid in batch.relevant}
    for survivor, _merged in graph.merged:
        # the merge combined traits and flags: the survivor's profile is rebuilt
        batch.trait_updates.setdefault(live(survivor), {})


# -- store events ----------------------------------------------------------------------------
def store_events(batch: Batch) -> None:
    """Append the events (a message id stored meanwhile by another writer is a no-op)."""
    insert_ignoring_conflicts(batch.connection, events, batch.event_rows, ["message_id"])
    batch.result.accepted = len(batch.event_rows)
    assert batch.graph is not None
    batch.graph.remember()


def claim(batch: Batch) -> None:
    """Lock the batch's existing persons where the writer's memory checked them without
    locking: from here on nobody else changes them until the commit (what another writer
    changed meanwhile is forgotten, and read again by the stages that follow)."""
    assert batch.graph is not None
    batch.graph.claim()


def backdate(batch: Batch) -> None:
    """History replay: a person first seen later than an event this batch brings (events
    imported after the person) is taken as first seen at that event, and its ``created``
    entry moves with it, so the stage history stays in time order and the time to MQL is
    never negative. Real-time ingest scores at arrival and needs none of this."""
    earliest: dict[int, datetime] = {}
    for row in batch.event_rows:
        pid, at = row["person_id"], row["timestamp"]
        if pid not in earliest or at < earliest[pid]:
            earliest[pid] = at
    if not earliest:
        return
    params = [{"pid": pid, "at": at} for pid, at in sorted(earliest.items())]
    batch.connection.execute(
        update(persons)
        .where(persons.c.id == bindparam("pid"), persons.c.first_seen_at > bindparam("at"))
        .values(first_seen_at=bindparam("at")),
        params,
    )
    batch.connection.execute(
        update(stage_history)
        .where(
            stage_history.c.person_id == bindparam("pid"),
            stage_history.c.from_stage.is_(None),
            stage_history.c.changed_at > bindparam("at"),
        )
        .values(changed_at=bindparam("at")),
        params,
    )


# -- update people and accounts ------------------------------------------------------------
def update_people(context: Context, batch: Batch) -> None:
    """Apply group calls, traits, flags, e-mail accounts and profiles to the touched
    persons; leave in ``batch.people`` each one as it now stands, and in
    ``batch.last_seen`` the ``last_seen_at`` not written yet (qualify writes it with the
    score, one UPDATE per person)."""
    connection, memory = batch.connection, batch.memory
    for person_id, message in batch.groups.items():
        assert message.group_id is not None
        account_id = account_store.group_account(
            connection, message.group_id, message.traits, batch.now, merge_traits=deep_merge
        )
        repo.bump_person(connection, person_id, {"account_id": account_id})
        memory.rows.pop(person_id, None)
        memory.accounts.clear()
        memory.domain_accounts.clear()
    rows = _current_rows(batch)
    rebuild = {
        pid
        for pid, row in rows.items()
        if pid in batch.trait_updates
        or pid in batch.flag_updates
        or pid in batch.groups
        or row.profile == {}
    }
    traits_of = {pid: rows[pid].traits for pid in rebuild if rows[pid].traits is not None}
    traits_of.update(repo.person_traits(connection, [p for p in rebuild if p not in traits_of]))
    accounts = _accounts(
        batch, [rows[pid].account_id for pid in rebuild] + _named_accounts(context, batch)
    )
    updates: list[dict[str, Any]] = []
    for person_id, last_event in batch.touched.items():
        row = rows.get(person_id)
        if row is None:
            continue
        last_seen = max(last_event, row.last_seen_at)
        if person_id not in rebuild:
            if last_seen != row.last_seen_at:
                row = row._replace(last_seen_at=last_seen)
                batch.last_seen[person_id] = last_seen
            batch.people[person_id] = row
            continue
        traits = traits_of.get(person_id) or {}
        person = _rebuilt(context, batch, row, traits, accounts, last_seen)
        batch.people[person_id] = person
        updates.append(
            {
                "id": person_id,
                "traits": person.traits,
                "flags": list(person.flags),
                "profile": person.profile,
                "email": person.email,
                "account_id": person.account_id,
                "channel": person.channel,
                "last_seen_at": last_seen,
                "updated_at": batch.now,
            }
        )
    bulk_update(connection, persons, updates, increment=("row_version",))


def _current_rows(batch: Batch) -> dict[int, Person]:
    """The touched persons' rows: remembered, made by this batch, or read. Rows this
    batch wrote by other means (a group's account, a merge) are read again."""
    graph = batch.graph
    assert graph is not None
    memory = batch.memory
    changed = set(batch.groups) | {pid for pair in graph.merged for pid in pair}
    rows: dict[int, Person] = {}
    for pid in batch.touched:
        if pid in changed:
            continue
        remembered = memory.rows.get(pid)
        if remembered is None and pid in graph.created:
            remembered = Person.created(graph.created[pid])  # not read back: this batch wrote it
        if remembered is not None:
            rows[pid] = remembered
    missing = [pid for pid in batch.touched if pid not in rows]
    if missing:
        rows.update(persons_by_id(batch.connection, missing, traits=True))
    return rows


def _named_accounts(context: Context, batch: Batch) -> list[int | None]:
    """The accounts the memory knows for the e-mail domains the batch's traits name, read
    with the persons' own accounts (one query, not one per account as persons claim
    them). Only what is read together: which person gets which account is decided later."""
    known = batch.memory.domain_accounts
    if not known:
        return []
    found: list[int | None] = []
    for traits in batch.trait_updates.values():
        address = traits.get("email")
        if isinstance(address, str) and address.strip():
            domain = cached_check_email(address, context.gmail_normalize).domain
            if domain:
                found.append(known.get(domain))
    return found


def _accounts(batch: Batch, account_ids: Sequence[int | None]) -> dict[int, Account]:
    """Accounts by id, from the memory when it has them."""
    known = batch.memory.accounts
    found = {a: known[a] for a in account_ids if a is not None and a in known}
    missing = sorted({a for a in account_ids if a is not None and a not in found})
    if missing:
        loaded = account_store.accounts_by_id(batch.connection, missing)
        known.update(loaded)
        found.update(loaded)
    return found


def _rebuilt(
    context: Context,
    batch: Batch,
    row: Person,
    traits: Mapping[str, Any],
    accounts: dict[int, Account],
    last_seen: datetime,
) -> Person:
    """A person whose traits, flags or account changed in this batch, with its profile
    built again (the profile depends on those, not on activity times)."""
    person_id = row.id
    new_traits = batch.trait_updates.get(person_id)
    channel, email, account_id = row.channel, row.email, row.account_id
    changed = False
    if new_traits is not None:
        traits = deep_merge(traits, new_traits)
        changed = True
        channel = named_channel(new_traits.get("lead_source")) or channel
    flags = row.flags
    added = batch.flag_updates.get(person_id)
    if added is not None and not added <= set(flags):
        flags = tuple(sorted(set(flags) | added))
        changed = True
    address = traits.get("email")
    if isinstance(address, str) and address.strip() and new_traits is not None:
        check = cached_check_email(address, context.gmail_normalize)
        email = check.normalized or address.strip().lower()
        if (
            account_id is None
            and check.valid
            and check.domain
            and not check.flags & NO_ACCOUNT_FLAGS
        ):
            account_id = _domain_account(batch, check.domain, traits)
            accounts.update(_accounts(batch, [account_id]))
    profile = row.profile
    if changed or person_id in batch.groups or row.profile == {}:
        account = accounts.get(account_id) if account_id is not None else None
        profile = context.profile_for(traits, flags, account)
    return row._replace(
        last_seen_at=last_seen,
        traits=traits,
        flags=flags,
        email=email,
        account_id=account_id,
        channel=channel,
        profile=profile,
    )


def _domain_account(batch: Batch, domain: str, traits: Mapping[str, Any]) -> int:
    known = batch.memory.domain_accounts
    account_id = known.get(domain)
    if account_id is None:
        account_id = known[domain] = account_store.domain_account(
            batch.connection, domain, traits, batch.now
        )
    return account_id


# -- qualify ---------------------------------------------------------------------------------
def qualify(context: Context, batch: Batch) -> None:
    """Score the persons the batch can have changed, apply lifecycle decisions (with the
    handoff: routing, SLA, outbox rows), write the remaining ``last_seen_at`` values, and
    leave in the memory each person as this transaction leaves it."""
    as_of = batch.touched if batch.replay else None
    to_score = list(batch.touched)
    if batch.replay:
        # Replaying history, a person whose new events no rule can score keeps the
        # score of its last relevant event: such events cannot qualify anyone, and time
        # alone only lowers a score (the nightly `mql score` applies that).
        people = batch.people
        to_score = [
            pid
            for pid in batch.touched
            if pid in batch.relevant
            or pid in batch.trait_updates
            or pid in batch.flag_updates
            or pid in batch.groups
            or pid not in people
            or people[pid].scored_at is None
        ]
    memory = batch.memory
    outcomes = batch.result.outcomes = rescore(
        batch.connection,
        context.definition,
        to_score,
        now=batch.now,
        as_of=as_of,
        cache=memory.events,
        rows=batch.people,
        last_seen=batch.last_seen,
        verdicts=memory.verdicts,
        handoff=context.handoff,
        judged=memory.judged,
    )
    scored = {o.person_id for o in outcomes}
    bulk_update(
        batch.connection,
        persons,
        [
            {"id": pid, "last_seen_at": moment}
            for pid, moment in batch.last_seen.items()
            if pid not in scored
        ],
    )
    memory.rows.update(batch.people)
    for outcome in outcomes:
        if outcome.change is not None:
            memory.rows.pop(outcome.person_id, None)  # the stage moved: read it again
        elif outcome.person is not None and outcome.person_id in batch.people:
            memory.rows[outcome.person_id] = outcome.person
    batch.result.persons = set(batch.touched)

"""The ingest pipeline: one transaction per batch, from raw messages to stage changes.

identity → validate → dedupe → enrich → score → lifecycle, all inside one commit, so a
batch that is acknowledged is durable and a batch that fails leaves nothing half-done.
Bad messages are reported per index and never stop the good ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Connection, select, update

from mqlengine.domain.lifecycle import StageChange
from mqlengine.domain.rules import Definition
from mqlengine.domain.scoring import Event
from mqlengine.ingest.identity import IdentityGraph, identity_keys
from mqlengine.ingest.messages import Message, MessageError, parse_message
from mqlengine.ingest.profile import build_profile, deep_merge
from mqlengine.ingest.validation import cached_check_email, check_message, ignored_flags
from mqlengine.ingest.writerstate import WriterState
from mqlengine.services.qualify import EventCache, Outcome, rescore, scorer_for
from mqlengine.store import repo
from mqlengine.store.changes import REMEMBERED_PERSON_COLUMNS
from mqlengine.store.dialect import bulk_update, insert_ignoring_conflicts
from mqlengine.store.tables import accounts, events, persons
from mqlengine.store.tables_ingest import quarantine

if TYPE_CHECKING:
    from mqlengine.ingest.firmographics import Enricher

PAID_MEDIUMS = {"cpc", "ppc", "paid", "paidsearch", "paid_search", "display", "cpm"}
# A person's e-mail domain names their company, except for these kinds of mailbox.
NO_ACCOUNT_FLAGS = frozenset({"free_mail", "disposable", "edu_domain", "invalid"})
SOCIAL_SOURCES = {"linkedin", "facebook", "twitter", "x", "instagram", "reddit", "tiktok"}


@dataclass(frozen=True)
class Rejection:
    index: int
    message_id: str | None
    field: str
    reason: str
    code: str = "invalid_message"  # or "rejected_by_check" (the definition's validation)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "messageId": self.message_id,
            "code": self.code,
            "field": self.field,
            "reason": self.reason,
        }


# (index, message, signal flags) of the good messages, and the rejections
Parsed = tuple[list[tuple[int, Message, frozenset[str]]], list[Rejection]]


@dataclass
class BatchResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    duplicate_indexes: list[int] = field(default_factory=list)
    persons: set[int] = field(default_factory=set)
    outcomes: list[Outcome] = field(default_factory=list)
    merges: list[tuple[int, int]] = field(default_factory=list)

    @property
    def stage_changes(self) -> list[tuple[int, StageChange]]:
        return [(o.person_id, o.change) for o in self.outcomes if o.change is not None]


def channel_of(message: Message) -> dict[str, Any]:
    """First-touch attribution from UTM parameters (``context.campaign``) or the referrer."""
    campaign = message.context.get("campaign")
    traits = message.traits
    lead_source = (traits.get("lead_source") or traits.get("channel")) if traits else None
    if campaign is None and lead_source is None:  # the common case: only the referrer says
        page = message.context.get("page")
        referrer = page.get("referrer") if page is not None and isinstance(page, Mapping) else None
        return {"channel": "referral" if referrer else "direct", "source": None, "campaign": None}
    result: dict[str, Any] = {"channel": None, "source": None, "campaign": None}
    if isinstance(campaign, Mapping):
        source = str(campaign.get("source") or "").lower() or None
        medium = str(campaign.get("medium") or "").lower()
        result["source"] = source
        result["campaign"] = campaign.get("name")
        if medium in PAID_MEDIUMS:
            result["channel"] = "paid_social" if source in SOCIAL_SOURCES else "paid_search"
        elif medium in ("email", "newsletter"):
            result["channel"] = "email"
        elif medium in ("social", "organic_social"):
            result["channel"] = "organic_social"
        elif medium in ("referral", "partner", "affiliate"):
            result["channel"] = "partner" if medium != "referral" else "referral"
        elif medium in ("event", "events", "webinar"):
            result["channel"] = "events"
        elif medium == "organic":
            result["channel"] = "organic_search"
    if isinstance(lead_source, str) and lead_source.strip():
        result["channel"] = lead_source.strip().lower()
    if result["channel"] is None:
        page = message.context.get("page")
        referrer = page.get("referrer") if isinstance(page, Mapping) else None
        result["channel"] = "referral" if referrer else "direct"
    return result


def _follow(
    updates: dict[int, Any], live: Callable[[int], int], combine: Callable[[Any, Any], Any]
) -> dict[int, Any]:
    """Re-key per-person updates to the survivors of merges made in this batch."""
    result: dict[int, Any] = {}
    for person_id, value in updates.items():
        target = live(person_id)
        result[target] = combine(result[target], value) if target in result else value
    return result


# What this pipeline and rescoring read of a person (a narrower read is a cheaper one);
# the writer's memory keeps these and the traits.
_PIPELINE_COLUMNS = tuple(c for c in REMEMBERED_PERSON_COLUMNS if c != "traits")


def _new_row(created: Mapping[str, Any]) -> dict[str, Any]:
    """The pipeline's view of a person this batch created (not read back)."""
    row = {name: created.get(name) for name in _PIPELINE_COLUMNS}
    row["traits"] = created["traits"]
    row["total_score"] = 0.0
    return row


class Pipeline:
    """Ingests batches of Segment messages against one definition."""

    def __init__(
        self,
        definition: Definition,
        *,
        enricher: Enricher | Sequence[Enricher] | None = None,
        cache: EventCache | None = None,
        gmail_normalize: bool | None = None,
        state: WriterState | None = None,
    ) -> None:
        """``enricher``: one or several providers, asked in order (the first that knows a
        domain wins). ``gmail_normalize`` defaults to the definition's ``identity:``.
        ``state``: the memory of a single writer between its transactions (see
        :mod:`mqlengine.ingest.writerstate`; the HTTP API's writer has one)."""
        self.definition = definition
        if enricher is None:
            self.enrichers: tuple[Enricher, ...] = ()
        elif isinstance(enricher, Sequence):
            self.enrichers = tuple(enricher)
        else:
            self.enrichers = (enricher,)
        self.cache = cache
        self.state = state
        self.gmail_normalize = (
            definition.identity.gmail_normalize if gmail_normalize is None else gmail_normalize
        )
        self.ignore_flags = ignored_flags(definition.validation)

    @contextmanager
    def transaction(self, connection: Connection) -> Iterator[None]:
        """A write transaction for :meth:`ingest`: if it fails, the writer's state forgets
        what it learnt during it (none of that was committed)."""
        try:
            with connection.begin():
                yield
        except BaseException:
            if self.state is not None:
                self.state.rollback()
            raise

    @property
    def enricher(self) -> Enricher | None:
        return self.enrichers[0] if self.enrichers else None

    def parse(
        self, raw_messages: Sequence[Any], received_at: datetime, default_type: str | None = None
    ) -> tuple[list[tuple[int, Message, frozenset[str]]], list[Rejection]]:
        """Parse and validate: (index, message, signal flags) for good ones, rejections."""
        good: list[tuple[int, Message, frozenset[str]]] = []
        bad: list[Rejection] = []
        policy = self.definition.validation
        for index, raw in enumerate(raw_messages):
            try:
                message = parse_message(raw, received_at=received_at, default_type=default_type)
            except MessageError as error:
                message_id = raw.get("messageId") if isinstance(raw, dict) else None
                if not isinstance(message_id, str):
                    message_id = None
                bad.append(Rejection(index, message_id, error.field, error.reason))
                continue
            verdict = check_message(message, policy, gmail_normalize=self.gmail_normalize)
            if verdict.rejection is not None:
                where, reason = verdict.rejection
                bad.append(Rejection(index, message.message_id, where, reason, "rejected_by_check"))
                continue
            good.append((index, message, verdict.flags))
        return good, bad

    def enrich(self, domain: str) -> Mapping[str, Any] | None:
        for provider in self.enrichers:
            found = provider.enrich(domain)
            if found:
                return found
        return None

    def profile_for(
        self,
        traits: Mapping[str, Any],
        flags: Sequence[str],
        account: Any,
    ) -> dict[str, Any]:
        """The scoring profile of a person: traits + title parsing + account + firmographics."""
        domain = account["domain"] if account is not None else None
        return build_profile(
            traits,
            account_traits=(account["traits"] if account is not None else None),
            signal_flags=sorted(flags),
            firmographics=self.enrich(domain) if domain else None,
            gmail_normalize=self.gmail_normalize,
            ignore_flags=self.ignore_flags,
        )

    def ingest(
        self,
        connection: Connection,
        raw_messages: Sequence[Any],
        *,
        now: datetime,
        score_as_of: str = "arrival",
        default_type: str | None = None,
        quarantine_endpoint: str | None = None,
        parsed: Parsed | None = None,
    ) -> BatchResult:
        """Ingest on the caller's transaction. ``score_as_of``: ``arrival`` scores every
        touched person at ``now`` (real time); ``event`` replays history: each person is
        scored as of its newest event, and only when the batch can change its score (a
        relevant event, new traits or flags, a merge, a new person).
        With ``quarantine_endpoint``, rejected messages are kept in the quarantine table
        (same transaction) under that endpoint name. ``parsed``: what :meth:`parse` made of
        ``raw_messages`` already (the HTTP API parses before the writer takes the batch)."""
        good, rejected = (
            parsed if parsed is not None else self.parse(raw_messages, now, default_type)
        )
        result = BatchResult(rejected=rejected)
        if rejected and quarantine_endpoint is not None:
            quarantine_rejections(connection, raw_messages, rejected, quarantine_endpoint, now)
        if not good:
            return result

        # dedupe: already stored, or repeated inside this batch
        ids = [m.message_id for _, m, _ in good]
        seen: set[str] = set()
        for part in repo.chunks(ids):
            seen.update(
                r.message_id
                for r in connection.execute(
                    select(events.c.message_id).where(events.c.message_id.in_(part))
                )
            )
        fresh: list[tuple[Message, frozenset[str]]] = []
        for index, message, signal_flags in good:
            if message.message_id in seen:
                result.duplicates += 1
                result.duplicate_indexes.append(index)
                continue
            seen.add(message.message_id)
            fresh.append((message, signal_flags))

        state = self.state if self.state is not None and self.state.begin(connection) else None
        cache = state.events if state is not None else self.cache
        graph = IdentityGraph(connection, now, state)
        keyed = [(m, identity_keys(m, gmail_normalize=self.gmail_normalize), f) for m, f in fresh]
        graph.prefetch(k for _, ks, _ in keyed for k in ks)

        event_rows: list[dict[str, Any]] = []
        touched: dict[int, datetime] = {}
        replay = score_as_of == "event"
        scorer = scorer_for(self.definition)
        rescore_needed: set[int] = set()
        trait_updates: dict[int, dict[str, Any]] = {}
        flag_updates: dict[int, set[str]] = {}
        groups: dict[int, Message] = {}
        for message, keys, flags in keyed:
            person_id = graph.resolve(message, keys, channel_of(message))
            if cache is not None and person_id in graph.created and not cache.knows(person_id):
                cache.put(person_id, [])  # a new person: nothing scored before this batch
            if message.traits and message.type != "group":
                trait_updates[person_id] = deep_merge(
                    trait_updates.get(person_id, {}), message.traits
                )
            if message.type == "group":
                groups[person_id] = message
            if flags:
                flag_updates.setdefault(person_id, set()).update(flags)
            previous = touched.get(person_id)
            if previous is None or message.timestamp > previous:
                touched[person_id] = message.timestamp
            properties = (
                message.traits if message.type in ("identify", "group") else message.properties
            )
            event_rows.append(
                {
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
                }
            )
            if message.scored and (cache is not None or replay):
                event = Event(
                    message.message_id, message.name, message.timestamp, message.properties
                )
                if cache is not None:
                    cache.add(person_id, event)
                if replay and scorer.relevant(event):
                    rescore_needed.add(person_id)
        graph.flush()
        result.merges = list(graph.merged)
        for survivor, merged in graph.merged:
            touched.pop(merged, None)
            touched.setdefault(survivor, now)
            if cache is not None:
                cache.drop(survivor)
                cache.drop(merged)
        # rows whose person was merged away later in the batch follow the survivor
        if graph.merged:
            for row in event_rows:
                row["person_id"] = graph.live(row["person_id"])
            trait_updates = _follow(trait_updates, graph.live, deep_merge)
            flag_updates = _follow(flag_updates, graph.live, lambda a, b: a | b)
            groups = {graph.live(pid): m for pid, m in groups.items()}
            for survivor, _merged in graph.merged:
                # the merge combined traits and flags: the survivor's profile is rebuilt
                trait_updates.setdefault(graph.live(survivor), {})
        insert_ignoring_conflicts(connection, events, event_rows, ["message_id"])
        result.accepted = len(event_rows)

        graph.remember()
        current, last_seen = self._update_people(
            connection, touched, trait_updates, flag_updates, groups, now, graph, state
        )
        as_of = touched if replay else None
        to_score = list(touched)
        if replay:
            # Replaying history, a person whose new events no rule can score keeps the
            # score of its last relevant event: such events cannot qualify anyone, and time
            # alone only lowers a score (the nightly `mql score` applies that).
            rescore_needed = {graph.live(pid) for pid in rescore_needed}
            to_score = [
                pid
                for pid in touched
                if pid in rescore_needed
                or pid in trait_updates
                or pid in flag_updates
                or pid in groups
                or pid not in current
                or current[pid]["scored_at"] is None
            ]
        result.outcomes = rescore(
            connection,
            self.definition,
            to_score,
            now=now,
            as_of=as_of,
            cache=cache,
            known_rows=current,
            last_seen=last_seen,
            verdicts=state.verdicts if state is not None else None,
        )
        # last_seen_at of the persons not rescored (the rescored ones got it with the score)
        scored = {o.person_id for o in result.outcomes}
        bulk_update(
            connection,
            persons,
            [
                {"id": pid, "last_seen_at": moment}
                for pid, moment in last_seen.items()
                if pid not in scored
            ],
        )
        if state is not None:
            state.end(connection)
            state.rows.update(current)
            version = self.definition.version
            for outcome in result.outcomes:
                if outcome.change is not None:
                    state.rows.pop(outcome.person_id, None)  # the stage moved: read it again
                    continue
                scored_row = current.get(outcome.person_id)
                if scored_row is not None:
                    scored_row["total_score"] = outcome.card.total
                    scored_row["scored_at"] = as_of.get(outcome.person_id, now) if as_of else now
                    scored_row["definition_version"] = version
        result.persons = set(touched)
        return result

    def _update_people(
        self,
        connection: Connection,
        touched: dict[int, datetime],
        trait_updates: dict[int, dict[str, Any]],
        flag_updates: dict[int, set[str]],
        groups: dict[int, Message],
        now: datetime,
        graph: IdentityGraph,
        state: WriterState | None,
    ) -> tuple[dict[int, dict[str, Any]], dict[int, datetime]]:
        """Apply trait, flag, account and profile changes. Returns the persons' rows as
        they now stand in this transaction, and the new ``last_seen_at`` of persons whose
        row is not otherwise written (the caller writes it with their score)."""
        for person_id, message in groups.items():
            account_id = self._group_account(connection, message, now)
            repo.bump_person(connection, person_id, {"account_id": account_id})
            if state is not None:
                state.rows.pop(person_id, None)
                state.accounts.clear()
                state.domain_accounts.clear()
        # Most persons in a batch only did something: their traits, profile inputs and
        # account are unchanged, so neither traits nor accounts are read for them.
        rows: dict[int, Any] = {}
        if state is not None:
            # rows this batch wrote by other means (a group's account, a merge) are read
            changed = set(groups) | {pid for pair in graph.merged for pid in pair}
            for pid in touched:
                if pid in changed:
                    continue
                remembered = state.rows.get(pid)
                if remembered is None and pid in graph.created:
                    remembered = _new_row(graph.created[pid])
                if remembered is not None:
                    rows[pid] = remembered
        missing = [pid for pid in touched if pid not in rows]
        if missing:
            columns = _PIPELINE_COLUMNS if state is None else (*_PIPELINE_COLUMNS, "traits")
            for pid, read in repo.persons_by_id(connection, missing, only=columns).items():
                rows[pid] = read
        rebuild = {
            pid
            for pid, row in rows.items()
            if pid in trait_updates or pid in flag_updates or pid in groups or row["profile"] == {}
        }
        traits_of: dict[int, Any] = {
            pid: rows[pid]["traits"] for pid in rebuild if "traits" in rows[pid]
        }
        traits_of.update(repo.person_traits(connection, [p for p in rebuild if p not in traits_of]))
        account_rows = self._accounts(
            connection, [rows[pid]["account_id"] for pid in rebuild if pid in rows], state
        )
        seen: dict[int, datetime] = {}
        updates: list[dict[str, Any]] = []
        current: dict[int, dict[str, Any]] = {}
        domain_accounts: dict[str, int] = state.domain_accounts if state is not None else {}
        for person_id, last_event in touched.items():
            row = rows.get(person_id)
            if row is None:
                continue
            last_seen = max(last_event, row["last_seen_at"])
            if person_id not in rebuild:
                current[person_id] = {**row, "last_seen_at": last_seen}
                if last_seen != row["last_seen_at"]:
                    seen[person_id] = last_seen
                continue
            values: dict[str, Any] = {}
            traits = traits_of.get(person_id) or {}
            if person_id in trait_updates:
                traits = deep_merge(traits, trait_updates[person_id])
                values["traits"] = traits
                lead_source = trait_updates[person_id].get("lead_source")
                if isinstance(lead_source, str) and lead_source.strip():
                    values["channel"] = lead_source.strip().lower()
            flags = set(row["flags"] or [])
            if person_id in flag_updates and not flag_updates[person_id] <= flags:
                flags |= flag_updates[person_id]
                values["flags"] = sorted(flags)
            account_id = row["account_id"]
            email = traits.get("email")
            if isinstance(email, str) and email.strip() and person_id in trait_updates:
                check = cached_check_email(email, self.gmail_normalize)
                values["email"] = check.normalized or email.strip().lower()
                if (
                    account_id is None
                    and check.valid
                    and check.domain
                    and not check.flags & NO_ACCOUNT_FLAGS
                ):
                    known = domain_accounts.get(check.domain)
                    if known is None:
                        known = self._domain_account(connection, check.domain, traits, now)
                        domain_accounts[check.domain] = known
                    account_id = known
                    values["account_id"] = account_id
                    if account_id not in account_rows:
                        account_rows.update(self._accounts(connection, [account_id], state))
            # The profile depends on traits, flags and the account, not on activity times.
            if values or person_id in groups or row["profile"] == {}:
                account = account_rows.get(account_id) if account_id is not None else None
                values["profile"] = self.profile_for(traits, sorted(flags), account)
            current[person_id] = {**row, **values, "traits": traits, "last_seen_at": last_seen}
            updates.append(
                {
                    "id": person_id,
                    "traits": values.get("traits", traits),
                    "flags": values.get("flags", row["flags"]),
                    "profile": values.get("profile", row["profile"]),
                    "email": values.get("email", row["email"]),
                    "account_id": values.get("account_id", row["account_id"]),
                    "channel": values.get("channel", row["channel"]),
                    "last_seen_at": last_seen,
                    "updated_at": now,
                }
            )
        bulk_update(connection, persons, updates, increment=("row_version",))
        return current, seen

    def _accounts(
        self, connection: Connection, account_ids: list[int], state: WriterState | None
    ) -> dict[int, Any]:
        """Account rows by id (from the writer's state when it has them)."""
        if state is None:
            return dict(repo.accounts_by_id(connection, account_ids))
        found = {a: state.accounts[a] for a in account_ids if a in state.accounts}
        missing = [a for a in account_ids if a is not None and a not in found]
        if missing:
            loaded = repo.accounts_by_id(connection, missing)
            state.accounts.update(loaded)
            found.update(loaded)
        return found

    def _domain_account(
        self, connection: Connection, domain: str, traits: Mapping[str, Any], now: datetime
    ) -> int:
        row = connection.execute(select(accounts.c.id).where(accounts.c.domain == domain)).first()
        if row is not None:
            return int(row.id)
        company = traits.get("company")
        name = company.get("name") if isinstance(company, Mapping) else company
        account_traits: dict[str, Any] = {}
        if isinstance(company, Mapping):
            account_traits = {
                k: company[k] for k in ("name", "industry", "employees") if k in company
            }
        insert_ignoring_conflicts(
            connection,
            accounts,
            [
                {
                    "domain": domain,
                    "name": name if isinstance(name, str) else domain,
                    "traits": account_traits,
                    "created_at": now,
                    "updated_at": now,
                }
            ],
            ["domain"],
        )
        return int(
            connection.execute(
                select(accounts.c.id).where(accounts.c.domain == domain)
            ).scalar_one()
        )

    def _group_account(self, connection: Connection, message: Message, now: datetime) -> int:
        group_id = message.group_id
        assert group_id is not None
        traits = message.traits
        row = connection.execute(
            select(accounts.c.id, accounts.c.traits).where(accounts.c.group_id == group_id)
        ).first()
        website = traits.get("website") or traits.get("domain")
        domain = None
        if isinstance(website, str) and website.strip():
            domain = website.strip().lower().split("://")[-1].split("/")[0].removeprefix("www.")
        if row is None and domain:
            row = connection.execute(
                select(accounts.c.id, accounts.c.traits).where(accounts.c.domain == domain)
            ).first()
        if row is not None:
            connection.execute(
                update(accounts)
                .where(accounts.c.id == row.id)
                .values(
                    group_id=group_id,
                    traits=deep_merge(row.traits or {}, traits),
                    name=traits.get("name") or accounts.c.name,
                    updated_at=now,
                )
            )
            return int(row.id)
        result = connection.execute(
            accounts.insert().values(
                group_id=group_id,
                domain=domain,
                name=traits.get("name"),
                traits=traits,
                created_at=now,
                updated_at=now,
            )
        )
        return int(result.inserted_primary_key[0])  # type: ignore[index]


QUARANTINE_PAYLOAD_LIMIT = 64 * 1024


def quarantine_rows(
    raw_messages: Sequence[Any],
    rejected: Sequence[Rejection],
    endpoint: str,
    now: datetime,
) -> list[dict[str, Any]]:
    rows = []
    for rejection in rejected:
        raw = raw_messages[rejection.index]
        try:
            payload = orjson.dumps(raw).decode()
        except TypeError:
            payload = repr(raw)
        truncated = len(payload) > QUARANTINE_PAYLOAD_LIMIT
        rows.append(
            {
                "received_at": now,
                "endpoint": endpoint,
                "code": rejection.code,
                "field": rejection.field[:255] or None,
                "reason": rejection.reason,
                "message_index": rejection.index,
                "message_id": (rejection.message_id or None) and rejection.message_id[:255],
                "payload": payload[:QUARANTINE_PAYLOAD_LIMIT],
                "truncated": int(truncated),
            }
        )
    return rows


def quarantine_rejections(
    connection: Connection,
    raw_messages: Sequence[Any],
    rejected: Sequence[Rejection],
    endpoint: str,
    now: datetime,
) -> None:
    """Keep rejected messages for inspection, on the caller's transaction."""
    rows = quarantine_rows(raw_messages, rejected, endpoint, now)
    if rows:
        connection.execute(quarantine.insert(), rows)

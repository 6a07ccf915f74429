"""Score persons and apply what the definition decides, persisting the why.

The functional core (:mod:`mqlengine.domain.scoring`, :mod:`mqlengine.domain.lifecycle`)
decides; this shell fetches inputs, calls it, and stores the score, the stage change with
its score card, and a compact score snapshot — all on the caller's transaction.

What a stage change sets off beyond the person (routing, SLA deadlines, outbox rows) is a
:class:`Handoff` handed in by whoever assembles the write path, so this room does not
reach up into the services that implement it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import orjson
from sqlalchemy import ColumnElement, Connection, Update, bindparam, update

from mqlengine.domain.explain import card_to_dict, rule_points
from mqlengine.domain.lifecycle import Stage, StageChange, decide_on_score
from mqlengine.domain.person import Person
from mqlengine.domain.rules import Definition
from mqlengine.domain.scoring import (
    Event,
    Likelihood,
    ScoreCard,
    Scorer,
    TraitVerdict,
    with_likelihood,
)
from mqlengine.store import repo
from mqlengine.store.dialect import bulk_insert, bulk_update
from mqlengine.store.repositories.persons import persons_by_id
from mqlengine.store.tables import persons, score_snapshots
from mqlengine.store.tables_predict import model_shadow_scores

SNAPSHOT_MIN_DELTA = 0.5
_SCORERS: dict[tuple[str, str], Scorer] = {}


def scorer_for(definition: Definition) -> Scorer:
    """One long-lived :class:`Scorer` per definition, so event matching is memoised."""
    key = (definition.version, definition.content_hash)
    found = _SCORERS.get(key)
    if found is None or found.definition is not definition:
        if len(_SCORERS) >= 4:
            _SCORERS.clear()
        found = _SCORERS[key] = Scorer(definition)
    return found


class EventCache:
    """Per-person scored events kept in memory by a writer.

    The writer's memory (:class:`~mqlengine.ingest.writerstate.WriterState`) holds one and
    says when it can be trusted: the pipeline adds what it inserts and drops persons it
    merges. A whole-base rescore may pass the same one (it changes no events).
    """

    def __init__(self, keep: Callable[[Event], bool] | None = None) -> None:
        """``keep``: which events are worth holding (e.g. :meth:`Scorer.relevant`); events
        no rule can match never change a score, so a cache may leave them out."""
        self._events: dict[int, list[Event]] = {}
        self._keep = keep

    def get(self, person_id: int) -> list[Event] | None:
        return self._events.get(person_id)

    def put(self, person_id: int, events: list[Event]) -> None:
        keep = self._keep
        self._events[person_id] = events if keep is None else [e for e in events if keep(e)]

    def add(self, person_id: int, event: Event) -> None:
        cached = self._events.get(person_id)
        if cached is not None and (self._keep is None or self._keep(event)):
            cached.append(event)

    def drop(self, person_id: int) -> None:
        self._events.pop(person_id, None)

    def knows(self, person_id: int) -> bool:
        return person_id in self._events

    def clear(self) -> None:
        self._events.clear()

    def __len__(self) -> int:
        return len(self._events)


class VerdictMemo(dict[str, TraitVerdict]):
    """Trait verdicts by the content of the profile judged (its JSON, keys sorted), for
    persons whose profile object is new: one read back from the store after the writer
    forgot it is judged again only when no person with the same profile was judged
    (under the same definition) since the memo was last cleared. Pure: clearing it changes
    nothing but the time the next judgement takes. ``bytes``: an estimate of its size."""

    ENTRY_BYTES = 400  # the entry, its key object and the verdict (whose parts are shared)

    def __init__(self) -> None:
        super().__init__()
        self.bytes = 0

    def __setitem__(self, key: str, verdict: TraitVerdict) -> None:
        if key not in self:
            self.bytes += len(key) + self.ENTRY_BYTES
        super().__setitem__(key, verdict)

    def clear(self) -> None:
        super().clear()
        self.bytes = 0


# Only plain JSON values are keyed: a datetime, a dataclass or a subclass of a JSON type
# in a profile makes orjson refuse it, and that profile is simply judged (profiles in the
# write path are JSON read from messages and the store, so that does not happen there).
_KEY_OPTIONS = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)


def _content_key(profile: Mapping[str, Any]) -> str | None:
    """The profile's JSON as text: orjson's bytes keep the buffer they were written in (4
    KB for a profile of 300 bytes), a string is as long as its text."""
    try:
        return orjson.dumps(profile, option=_KEY_OPTIONS).decode()
    except TypeError:  # orjson.JSONEncodeError is one
        return None


@dataclass(frozen=True)
class Outcome:
    """What scoring did to one person. ``person``: the row as this scoring left it (score,
    ``scored_at``, ``last_seen_at``); None when the stage moved (the stage change wrote
    more than scoring knows of)."""

    person_id: int
    card: ScoreCard
    change: StageChange | None
    person: Person | None = None


class OnStageChange(Protocol):
    def __call__(
        self,
        connection: Connection,
        definition: Definition,
        person_id: int,
        change: StageChange,
        *,
        recorded_at: datetime,
        card: ScoreCard | None = None,
        person: Mapping[Any, Any] | None = None,
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class ScoredPerson:
    """One person as scoring saw it, for the likelihood model."""

    person_id: int
    row: Person
    moment: datetime
    events: Sequence[Event]
    card: ScoreCard


class LikelihoodSession(Protocol):
    """The live model (and a shadow candidate) for one transaction."""

    def predict(
        self, connection: Connection, people: Sequence[ScoredPerson]
    ) -> tuple[Mapping[int, Likelihood], Mapping[int, Likelihood]]:
        """The live model's likelihoods and the shadow candidate's (empty without one)."""
        ...


class Likelihoods(Protocol):
    def session(self, connection: Connection, definition: Definition) -> LikelihoodSession | None:
        """None when no model is live and none shadows: scoring goes on as without."""
        ...


@dataclass(frozen=True)
class Handoff:
    """What a committed stage change sets off, on the same transaction: routing and an
    SLA deadline for a new MQL, outbox rows for the change. ``person_columns``: what it
    reads of the person, returned by the stage UPDATE itself (one statement fewer).
    ``likelihoods``: the registry's live model, asked while scoring (None: no model)."""

    person_columns: tuple[ColumnElement[Any], ...]
    on_stage_change: OnStageChange
    likelihoods: Likelihoods | None = None


def _events_for(
    connection: Connection, ids: list[int], cache: EventCache | None, names: frozenset[str]
) -> dict[int, list[Event]]:
    """The persons' events scoring can use: ``names`` are the only ones it reads, so
    events of other names (most of a site's traffic, often) are neither read back nor
    decoded."""
    if cache is None:
        return repo.load_events(connection, ids, names=names)
    missing = [pid for pid in ids if not cache.knows(pid)]
    if missing:
        loaded = repo.load_events(connection, missing, names=names)
        for pid in missing:
            cache.put(pid, loaded.get(pid, []))
    return {pid: cache.get(pid) or [] for pid in ids}


_STAGE_UPDATES: dict[tuple[tuple[str, ...], Sequence[ColumnElement[Any]]], Update] = {}


def _stage_update(keys: tuple[str, ...], returning: Sequence[ColumnElement[Any]]) -> Update:
    """The conditional stage UPDATE setting ``keys`` (and bumping ``row_version``), built
    once per shape so its compiled form is reused."""
    statement = _STAGE_UPDATES.get((keys, returning))
    if statement is None:
        statement = (
            update(persons)
            .where(persons.c.id == bindparam("b_id"), persons.c.stage == bindparam("b_from"))
            .values(
                row_version=persons.c.row_version + 1,
                **{k: bindparam(f"b_{k}", type_=persons.c[k].type) for k in keys},
            )
        )
        if returning:
            statement = statement.returning(*returning)
        _STAGE_UPDATES[(keys, tuple(returning))] = statement
    return statement


def apply_stage_change(
    connection: Connection,
    person_id: int,
    change: StageChange,
    *,
    recorded_at: datetime,
    card: ScoreCard | None = None,
    amount: float | None = None,
    extra: Mapping[str, Any] | None = None,
    definition: Definition | None = None,
    handoff: Handoff | None = None,
) -> bool:
    """Move a person if it is still in ``change.from_stage``; False when someone else did.

    With ``definition`` and ``handoff``, the handoff runs on the same transaction: outbox
    rows for the change, and routing + SLA deadline for a new MQL.

    The conditional UPDATE makes each stage change happen exactly once even with several
    writers: the loser of a race updates no row and records nothing.
    """
    values: dict[str, Any] = {
        "stage": change.to_stage.value,
        "stage_changed_at": change.at,
        "updated_at": recorded_at,
    }
    if change.to_stage is Stage.MQL:
        values["mql_type"] = change.mql_type
        values["mql_at"] = change.at
    if change.to_stage is Stage.NURTURE:
        values["recycled_at"] = change.at
    # With the handoff to run, the UPDATE also returns the row it reads (one statement).
    hands_off = definition is not None and handoff is not None
    returning: tuple[ColumnElement[Any], ...] = ()
    if handoff is not None and hands_off and connection.dialect.update_returning:
        returning = handoff.person_columns
    person: Mapping[Any, Any] | None = None
    if extra:
        values["row_version"] = persons.c.row_version + 1
        values.update(extra)
        statement = (
            update(persons)
            .where(persons.c.id == person_id, persons.c.stage == change.from_stage.value)
            .values(**values)
        )
        if returning:
            statement = statement.returning(*returning)
        result = connection.execute(statement)
    else:
        params = {f"b_{k}": v for k, v in values.items()}
        params["b_id"] = person_id
        params["b_from"] = change.from_stage.value
        result = connection.execute(_stage_update(tuple(values), returning), params)
    if returning:
        person = result.mappings().first()
        if person is None:
            return False
    elif result.rowcount != 1:
        return False
    repo.record_stage_change(
        connection,
        person_id,
        from_stage=change.from_stage.value,
        to_stage=change.to_stage.value,
        changed_at=change.at,
        reason=change.reason,
        actor=change.actor,
        recorded_at=recorded_at,
        action=change.action,
        definition_version=change.definition_version,
        mql_type=change.mql_type,
        reactivated=change.reactivated,
        amount=amount,
        score_card=card_to_dict(card) if card is not None else None,
    )
    if definition is not None and handoff is not None:
        handoff.on_stage_change(
            connection,
            definition,
            person_id,
            change,
            recorded_at=recorded_at,
            card=card,
            person=person,
        )
    return True


def rescore(
    connection: Connection,
    definition: Definition,
    person_ids: Iterable[int],
    *,
    now: datetime,
    as_of: Mapping[int, datetime] | None = None,
    cache: EventCache | None = None,
    lifecycle: bool = True,
    rows: Mapping[int, Person] | None = None,
    last_seen: Mapping[int, datetime] | None = None,
    verdicts: MutableMapping[int, tuple[object, TraitVerdict]] | None = None,
    handoff: Handoff | None = None,
    judged: VerdictMemo | None = None,
) -> list[Outcome]:
    """Rescore persons (as of ``as_of[pid]`` or ``now``) and apply stage decisions.

    ``rows``: the persons as they stand in this transaction, when the caller holds them
    (the others are read). ``last_seen``: new ``last_seen_at`` values written with the
    score (one UPDATE per person instead of two); given only by the write path, which
    holds its persons, so every score row carries its ``last_seen_at`` (new or as it
    stands) and one statement writes them all. ``verdicts``: what the definition
    concluded from each person's profile, kept by the caller between calls (an entry is
    used while its profile is the very same object). ``handoff``: what a stage change
    sets off (none without it). ``judged``: verdicts by profile content, kept by the
    caller between calls, asked (with ``verdicts``) before a new profile object is judged."""
    ids = sorted(set(person_ids))
    outcomes: list[Outcome] = []
    cooldown = definition.qualify.recycle_cooldown_days
    scorer = scorer_for(definition)
    version = definition.version
    session = None
    if handoff is not None and handoff.likelihoods is not None and ids:
        session = handoff.likelihoods.session(connection, definition)
    for part in repo.chunks(ids):
        held: dict[int, Person] = {}
        if rows is not None:
            held = {pid: rows[pid] for pid in part if pid in rows}
        missing = [pid for pid in part if pid not in held]
        if missing:
            held.update(persons_by_id(connection, missing))
        events_by_person = _events_for(
            connection, [p for p in part if p in held], cache, scorer.event_names
        )
        score_rows: list[dict[str, Any]] = []
        seen_rows: list[dict[str, Any]] = []
        snapshots: list[dict[str, Any]] = []
        people: list[tuple[ScoredPerson, TraitVerdict | None]] = []
        for pid in part:
            row = held.get(pid)
            if row is None or row.merged_into is not None:
                continue
            moment = as_of.get(pid, now) if as_of else now
            verdict = _verdict(scorer, verdicts, pid, row.profile, judged)
            person_events = events_by_person.get(pid, [])
            card = scorer.score(row.profile, person_events, moment, verdict=verdict)
            people.append((ScoredPerson(pid, row, moment, person_events, card), verdict))
        if session is not None and people:
            people = _with_likelihoods(connection, session, scorer, people)
        for item, _ in people:
            pid, row, moment, card = item.person_id, item.row, item.moment, item.card
            change = None
            if lifecycle:
                change = decide_on_score(
                    Stage(row.stage),
                    card,
                    moment,
                    recycled_at=row.recycled_at,
                    cooldown_days=cooldown,
                )
            score_row = {
                "id": pid,
                "fit_score": card.fit,
                "intent_score": card.intent,
                "total_score": card.total,
                "scored_at": moment,
                "definition_version": version,
            }
            seen = last_seen.get(pid) if last_seen else None
            if last_seen is not None:
                # the write path holds its persons (locked, or the whole SQLite file):
                # every row is written with its last_seen_at, new or as it stands, so all
                # take one statement
                score_row["last_seen_at"] = row.last_seen_at if seen is None else seen
                seen_rows.append(score_row)
            else:
                score_rows.append(score_row)
            changed_stage = False
            if change is not None:
                changed_stage = apply_stage_change(
                    connection,
                    pid,
                    change,
                    recorded_at=now,
                    card=card,
                    definition=definition,
                    handoff=handoff,
                )
            if (
                changed_stage
                or row.scored_at is None
                or abs(row.total_score - card.total) >= SNAPSHOT_MIN_DELTA
                or row.definition_version != version
            ):
                snapshots.append(_snapshot(pid, moment, version, card))
            if changed_stage:
                outcomes.append(Outcome(pid, card, change))
                continue
            scored = row._replace(
                total_score=card.total,
                scored_at=moment,
                definition_version=version,
                last_seen_at=row.last_seen_at if seen is None else seen,
            )
            outcomes.append(Outcome(pid, card, None, scored))
        bulk_update(connection, persons, score_rows)
        bulk_update(connection, persons, seen_rows)
        bulk_insert(connection, score_snapshots, snapshots)
    return outcomes


def _with_likelihoods(
    connection: Connection,
    session: LikelihoodSession,
    scorer: Scorer,
    scored: list[tuple[ScoredPerson, TraitVerdict | None]],
) -> list[tuple[ScoredPerson, TraitVerdict | None]]:
    """Attach the live model's likelihood to each card (scoring again where the
    definition's decision reads it) and record what a shadow candidate would decide."""
    live, shadow = session.predict(connection, [item for item, _ in scored])
    result: list[tuple[ScoredPerson, TraitVerdict | None]] = []
    shadow_rows: list[dict[str, Any]] = []
    reads = scorer.reads_likelihood
    for item, verdict in scored:
        card = item.card
        found = live.get(item.person_id)
        if found is not None:
            if reads:
                card = scorer.score(
                    item.row.profile, item.events, item.moment, verdict=verdict, likelihood=found
                )
            else:
                card = with_likelihood(card, found)
            item = ScoredPerson(item.person_id, item.row, item.moment, item.events, card)
        other = shadow.get(item.person_id)
        if other is not None:
            decided = (
                scorer.score(
                    item.row.profile, item.events, item.moment, verdict=verdict, likelihood=other
                ).qualifies
                if reads
                else card.qualifies
            )
            shadow_rows.append(
                {
                    "person_id": item.person_id,
                    "as_of": item.moment,
                    "live_version": card.model_version,
                    "live_likelihood": card.likelihood,
                    "live_qualifies": card.qualifies,
                    "shadow_version": other.model_version,
                    "shadow_likelihood": other.value,
                    "shadow_qualifies": decided,
                }
            )
        result.append((item, verdict))
    bulk_insert(connection, model_shadow_scores, shadow_rows)
    return result


def _verdict(
    scorer: Scorer,
    verdicts: MutableMapping[int, tuple[object, TraitVerdict]] | None,
    person_id: int,
    profile: Mapping[str, Any],
    judged: VerdictMemo | None = None,
) -> TraitVerdict | None:
    """What the definition concludes from a profile, judged again only when the profile
    is another object than the one judged last and, with ``judged``, no equal profile was
    judged (None: the scorer judges it itself)."""
    if verdicts is None:
        return None
    known = verdicts.get(person_id)
    if known is not None and known[0] is profile:
        return known[1]
    key = _content_key(profile) if judged is not None else None
    verdict = judged.get(key) if judged is not None and key is not None else None
    if verdict is None or verdict.definition_hash != scorer.definition.content_hash:
        verdict = scorer.judge_traits(profile)
        if judged is not None and key is not None:
            judged[key] = verdict
    verdicts[person_id] = (profile, verdict)
    return verdict


def _snapshot(person_id: int, moment: datetime, version: str, card: ScoreCard) -> dict[str, Any]:
    return {
        "person_id": person_id,
        "as_of": moment,
        "definition_version": version,
        "fit": card.fit,
        "intent": card.intent,
        "total": card.total,
        "qualifies": card.qualifies,
        "rule_points": rule_points(card),
    }

"""The weekly review: a stratified random sample of one week's MQLs, judged by the team.

The week's MQLs (entries into ``mql`` in the ISO week, a person counted once) fall into
strata by what sales did first after the MQL: ``accepted`` (accept, convert, won),
``rejected`` (reject, disqualify), ``recycled`` (recycle, lost) or ``untouched`` (no touch
and no feedback yet). MQLs touched without a verdict are in no stratum. The sample takes
the strata in turn, one random MQL each, until it has ``n`` or they run out, so a rare
stratum is seen. The sample is stored with the score card that made each lead an MQL, and
each item is marked "right call" or "wrong call" with a note; the report gives the share
of wrong calls among the marked items per week.
"""

from __future__ import annotations

import random
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from mqlengine.errors import ConflictError, NotFoundError, ValidationError
from mqlengine.services.corrections import week_of
from mqlengine.store.tables import persons, stage_history
from mqlengine.store.tables_desk import review_items, review_samples

STRATA = ("accepted", "rejected", "recycled", "untouched")
VERDICTS = ("right", "wrong")
_STRATUM_OF = {
    "accept": "accepted",
    "convert": "accepted",
    "won": "accepted",
    "reject": "rejected",
    "disqualify": "rejected",
    "recycle": "recycled",
    "lost": "recycled",
}
MAX_SAMPLE = 200


def parse_week(value: str | None, *, now: datetime) -> datetime:
    """The Monday starting the week named by a date in it (``YYYY-MM-DD``); default the
    week before ``now``'s."""
    if value is None or not value.strip():
        return week_of(now) - timedelta(days=7)
    try:
        day = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValidationError(f"week: '{value}' is not a date (YYYY-MM-DD)") from None
    if day.tzinfo is None:
        from datetime import UTC

        day = day.replace(tzinfo=UTC)
    return week_of(day)


def week_mqls(
    connection: Connection, week_start: datetime, *, team: str | None = None
) -> dict[str, list[tuple[int, datetime, dict[str, Any]]]]:
    """The week's MQLs by stratum: (person id, MQL moment, the card that qualified it)."""
    end = week_start + timedelta(days=7)
    query = (
        select(
            stage_history.c.person_id,
            stage_history.c.changed_at,
            stage_history.c.score_card,
            persons.c.first_touch_at,
        )
        .join(persons, persons.c.id == stage_history.c.person_id)
        .where(
            stage_history.c.to_stage == "mql",
            stage_history.c.changed_at >= week_start,
            stage_history.c.changed_at < end,
            persons.c.merged_into.is_(None),
        )
        .order_by(stage_history.c.person_id, stage_history.c.changed_at)
    )
    if team is not None:
        query = query.where(persons.c.owner_team == team)
    entries: dict[int, tuple[datetime, dict[str, Any], datetime | None]] = {}
    for r in connection.execute(query):
        entries[r.person_id] = (r.changed_at, r.score_card or {}, r.first_touch_at)
    out: dict[str, list[tuple[int, datetime, dict[str, Any]]]] = {s: [] for s in STRATA}
    if not entries:
        return out
    verdicts: dict[int, str] = {}
    ids = sorted(entries)
    for part in range(0, len(ids), 500):
        chunk = ids[part : part + 500]
        found = connection.execute(
            select(stage_history.c.person_id, stage_history.c.changed_at, stage_history.c.action)
            .where(
                stage_history.c.person_id.in_(chunk),
                stage_history.c.action.in_(tuple(_STRATUM_OF)),
            )
            .order_by(stage_history.c.person_id, stage_history.c.changed_at, stage_history.c.id)
        )
        for h in found:
            if h.person_id not in verdicts and h.changed_at >= entries[h.person_id][0]:
                verdicts[h.person_id] = _STRATUM_OF[h.action]
    for person_id, (mql_at, card, touched) in entries.items():
        stratum = verdicts.get(person_id)
        if stratum is None and touched is None:
            stratum = "untouched"
        if stratum is not None:
            out[stratum].append((person_id, mql_at, card))
    return out


def draw_sample(
    connection: Connection,
    *,
    week_start: datetime,
    n: int,
    team: str | None,
    seed: int | None,
    actor: str,
    now: datetime,
) -> dict[str, Any]:
    """Pick and store a sample (on the caller's transaction); returns it."""
    if not 1 <= n <= MAX_SAMPLE:
        raise ValidationError(f"--n must be between 1 and {MAX_SAMPLE}")
    if week_start > now:
        raise ValidationError(f"the week of {week_start.date()} has not begun")
    chosen_seed = seed if seed is not None else secrets.randbelow(2**31)
    if not 0 <= chosen_seed < 2**31:
        raise ValidationError("--seed must be between 0 and 2147483647")
    strata = week_mqls(connection, week_start, team=team)
    rng = random.Random(chosen_seed)
    pools = {s: sorted(strata[s], key=lambda e: e[0]) for s in STRATA}
    for pool in pools.values():
        rng.shuffle(pool)
    picked: list[tuple[str, tuple[int, datetime, dict[str, Any]]]] = []
    while len(picked) < n and any(pools.values()):
        for stratum in STRATA:
            if pools[stratum] and len(picked) < n:
                picked.append((stratum, pools[stratum].pop()))
    if not picked:
        raise NotFoundError(
            f"no MQLs to review in the week of {week_start.date()}"
            + (f" for team {team}" if team else "")
        )
    stages = dict(
        connection.execute(
            select(persons.c.id, persons.c.stage).where(persons.c.id.in_([e[0] for _, e in picked]))
        ).all()
    )
    sample_id = connection.execute(
        insert(review_samples).values(
            week_start=week_start,
            team=team,
            size=len(picked),
            seed=chosen_seed,
            created_at=now,
            actor=actor,
        )
    ).inserted_primary_key[0]  # type: ignore[index]
    connection.execute(
        insert(review_items),
        [
            {
                "sample_id": sample_id,
                "person_id": person_id,
                "stratum": stratum,
                "mql_at": mql_at,
                "stage": stages.get(person_id, "mql"),
                "score_card": card,
                "verdict": None,
                "note": None,
                "marked_by": None,
                "marked_at": None,
            }
            for stratum, (person_id, mql_at, card) in picked
        ],
    )
    available = {s: len(strata[s]) for s in STRATA}
    return {**get_sample(connection, int(sample_id)), "available": available}


def get_sample(connection: Connection, sample_id: int) -> dict[str, Any]:
    head = connection.execute(
        select(review_samples).where(review_samples.c.id == sample_id)
    ).first()
    if head is None:
        raise NotFoundError(f"review sample {sample_id} does not exist")
    items = [
        {
            "person_id": r.person_id,
            "stratum": r.stratum,
            "mql_at": r.mql_at.isoformat(),
            "stage": r.stage,
            "score_card": r.score_card,
            "verdict": r.verdict,
            "note": r.note,
            "marked_by": r.marked_by,
            "marked_at": r.marked_at.isoformat() if r.marked_at else None,
        }
        for r in connection.execute(
            select(review_items)
            .where(review_items.c.sample_id == sample_id)
            .order_by(review_items.c.id)
        )
    ]
    return {
        "id": head.id,
        "week": head.week_start.date().isoformat(),
        "team": head.team,
        "size": head.size,
        "seed": head.seed,
        "created_at": head.created_at.isoformat(),
        "actor": head.actor,
        "items": items,
    }


def list_samples(connection: Connection, *, limit: int = 20) -> list[dict[str, Any]]:
    marked = func.count(review_items.c.verdict)
    wrong = func.count(review_items.c.verdict).filter(review_items.c.verdict == "wrong")
    rows = connection.execute(
        select(review_samples, marked.label("marked"), wrong.label("wrong"))
        .join(review_items, review_items.c.sample_id == review_samples.c.id)
        .group_by(*review_samples.c)
        .order_by(review_samples.c.week_start.desc(), review_samples.c.id.desc())
        .limit(limit)
    )
    return [
        {
            "id": r.id,
            "week": r.week_start.date().isoformat(),
            "team": r.team,
            "size": r.size,
            "seed": r.seed,
            "marked": r.marked,
            "wrong": r.wrong,
        }
        for r in rows
    ]


def mark(
    connection: Connection,
    sample_id: int,
    person_id: int,
    *,
    verdict: str,
    note: str | None,
    actor: str,
    now: datetime,
) -> dict[str, Any]:
    """Mark one item of a sample right or wrong (a later mark replaces an earlier one)."""
    if verdict not in VERDICTS:
        raise ValidationError(f"verdict '{verdict}' is not one of: {', '.join(VERDICTS)}")
    text = (note or "").strip() or None
    if text is not None and len(text) > 2000:
        raise ValidationError(f"the note is {len(text)} characters long (at most 2000)")
    if text is not None and "\x00" in text:
        raise ValidationError("the note holds a NUL character")
    if verdict == "wrong" and text is None:
        raise ValidationError("a wrong call needs a note saying what was wrong")
    get_sample(connection, sample_id)  # 404 for an unknown sample
    result = connection.execute(
        update(review_items)
        .where(review_items.c.sample_id == sample_id, review_items.c.person_id == person_id)
        .values(verdict=verdict, note=text, marked_by=actor, marked_at=now)
    )
    if result.rowcount != 1:
        raise ConflictError(f"person {person_id} is not in review sample {sample_id}")
    return {"sample_id": sample_id, "person_id": person_id, "verdict": verdict, "note": text}


def review_report(connection: Connection, *, weeks: int = 12, now: datetime) -> dict[str, Any]:
    """Per sampled week (newest first): items, marked, wrong calls and their share of the
    marked ones ("—" with a note while nothing is marked)."""
    since = week_of(now) - timedelta(days=7 * weeks)
    rows = connection.execute(
        select(
            review_samples.c.week_start,
            func.count(review_items.c.id).label("items"),
            func.count(review_items.c.verdict).label("marked"),
            func.count(review_items.c.verdict)
            .filter(review_items.c.verdict == "wrong")
            .label("wrong"),
        )
        .join(review_items, review_items.c.sample_id == review_samples.c.id)
        .where(review_samples.c.week_start >= since)
        .group_by(review_samples.c.week_start)
        .order_by(review_samples.c.week_start.desc())
    )
    out: list[dict[str, Any]] = []
    for r in rows:
        share = r.wrong / r.marked if r.marked else None
        out.append(
            {
                "week": r.week_start.date().isoformat(),
                "items": r.items,
                "marked": r.marked,
                "wrong": r.wrong,
                "wrong_share": share,
                "notes": {} if r.marked else {"wrong_share": "no item of the week is marked"},
            }
        )
    return {"weeks": out}

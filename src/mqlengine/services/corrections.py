"""Manual corrections, never silent: an admin overrides a lead's score or stage with a
reason, and the change is kept three times over — in ``manual_corrections`` (what the
corrections report counts), in the stage history as a manual change (actor, reason), and
in the audit log.

A stage correction may move a lead to any other stage (it is an override, not sales
feedback: the lifecycle's transition table does not apply); a move into ``mql`` is routed
like any new MQL. A score correction sets the stored total (what lists sort by and reports
read) and adds a score snapshot marked ``manual``; the next rescore of the person (a new
event, ``mql score``) computes the score from the definition again, and the correction
stays in the history.

The corrections report counts, per ISO week, manual corrections (by kind) and routing
corrections: reassignments of an MQL to another rep (assignments after the first).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, select, update

from mqlengine.domain.lifecycle import Stage, StageChange
from mqlengine.domain.rules import Definition
from mqlengine.errors import ConflictError, NotFoundError, ValidationError
from mqlengine.services.audit import record_audit
from mqlengine.services.qualify import apply_stage_change
from mqlengine.store import repo
from mqlengine.store.tables import persons, score_snapshots
from mqlengine.store.tables_desk import manual_corrections
from mqlengine.store.tables_handoff import assignments

KINDS = ("score", "stage")
MANUAL = "manual"
MAX_SCORE = 1_000_000.0


def _reason(reason: str | None) -> str:
    text = (reason or "").strip()
    if not text:
        raise ValidationError("a correction needs a reason (what was wrong and why)")
    if len(text) > 500:
        raise ValidationError(f"the reason is {len(text)} characters long (at most 500)")
    if "\x00" in text:
        raise ValidationError("the reason holds a NUL character")
    return text


def correct(
    connection: Connection,
    definition: Definition,
    person_id: int,
    *,
    kind: str,
    value: str,
    reason: str | None,
    actor: str,
    key_id: str | None,
    now: datetime,
    address: str | None = None,
) -> dict[str, Any]:
    """Apply one manual correction on the caller's transaction; returns what changed."""
    if kind not in KINDS:
        raise ValidationError(f"unknown correction '{kind}' (use one of: {', '.join(KINDS)})")
    why = _reason(reason)
    live_id = repo.live_person_id(connection, person_id)
    row = repo.get_person(connection, live_id)
    if row is None:
        raise NotFoundError(f"person {person_id} does not exist")
    stage = str(row["stage"])
    if kind == "stage":
        before, after = stage, _stage(value, stage)
        change = StageChange(
            from_stage=Stage(before),
            to_stage=Stage(after),
            at=now,
            reason=why,
            actor=actor,
            definition_version=definition.version,
            mql_type=MANUAL if after == Stage.MQL else None,
            action=MANUAL,
        )
        if not apply_stage_change(
            connection, live_id, change, recorded_at=now, definition=definition
        ):
            raise ConflictError(
                f"person {person_id} changed stage concurrently; reload and retry",
                details={"code": "concurrent_change"},
            )
    else:
        score = _score(value)
        before, after = f"{row['total_score']:.2f}", f"{score:.2f}"
        connection.execute(
            update(persons)
            .where(persons.c.id == live_id)
            .values(
                total_score=score,
                scored_at=now,
                updated_at=now,
                row_version=persons.c.row_version + 1,
            )
        )
        connection.execute(
            insert(score_snapshots).values(
                person_id=live_id,
                as_of=now,
                definition_version=MANUAL,
                fit=row["fit_score"],
                intent=row["intent_score"],
                total=score,
                qualifies=bool(row["stage"] == Stage.MQL),
                rule_points={},
            )
        )
        repo.record_stage_change(
            connection,
            live_id,
            from_stage=stage,
            to_stage=stage,
            changed_at=now,
            reason=f"score {before} → {after}: {why}",
            actor=actor,
            recorded_at=now,
            action="manual_score",
            definition_version=definition.version,
        )
    connection.execute(
        insert(manual_corrections).values(
            person_id=live_id,
            kind=kind,
            from_value=before,
            to_value=after,
            reason=why,
            actor=actor,
            key_id=key_id,
            corrected_at=now,
        )
    )
    record_audit(
        connection,
        actor=actor,
        key_id=key_id,
        action=f"correction.{kind}",
        target=f"person:{live_id}",
        details={"from": before, "to": after, "reason": why},
        address=address,
        at=now,
    )
    return {"person_id": live_id, "kind": kind, "from": before, "to": after, "reason": why}


def _stage(value: str, current: str) -> str:
    target = value.strip().lower()
    if target not in {s.value for s in Stage}:
        choices = ", ".join(s.value for s in Stage)
        raise ValidationError(f"unknown stage '{value}' (use one of: {choices})")
    if target == current:
        raise ValidationError(f"the lead is already in stage {current}")
    return target


def _score(value: str) -> float:
    try:
        score = float(value)
    except ValueError:
        raise ValidationError(f"score '{value}' is not a number") from None
    if not -MAX_SCORE <= score <= MAX_SCORE or score != score:
        raise ValidationError(f"score {value} is out of range (±{MAX_SCORE:g})")
    return score


def week_of(moment: datetime) -> datetime:
    """The Monday 00:00 UTC starting ``moment``'s ISO week."""
    day = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=day.weekday())


def corrections_report(
    connection: Connection, *, since: datetime, until: datetime
) -> dict[str, Any]:
    """Per ISO week in ``[since, until)``: manual score and stage corrections and routing
    corrections (reassignments), newest week first, every week listed (zeros included)."""
    if since >= until:
        raise ValidationError("since must lie before until")
    counts: dict[datetime, dict[str, int]] = defaultdict(
        lambda: {"score": 0, "stage": 0, "reassignments": 0}
    )
    for kind, at in connection.execute(
        select(manual_corrections.c.kind, manual_corrections.c.corrected_at).where(
            manual_corrections.c.corrected_at >= since, manual_corrections.c.corrected_at < until
        )
    ):
        counts[week_of(at)][kind] += 1
    for (at,) in connection.execute(
        select(assignments.c.assigned_at).where(
            assignments.c.seq > 0,
            assignments.c.assigned_at >= since,
            assignments.c.assigned_at < until,
        )
    ):
        counts[week_of(at)]["reassignments"] += 1
    weeks: list[dict[str, Any]] = []
    week = week_of(until - timedelta(microseconds=1))
    first = week_of(since)
    while week >= first:
        c = counts[week]
        weeks.append(
            {
                "week": week.date().isoformat(),
                "score": c["score"],
                "stage": c["stage"],
                "manual": c["score"] + c["stage"],
                "reassignments": c["reassignments"],
            }
        )
        week -= timedelta(days=7)
    return {"since": since.isoformat(), "until": until.isoformat(), "weeks": weeks}


def recent_corrections(connection: Connection, *, limit: int = 20) -> list[dict[str, Any]]:
    return [
        {
            "person_id": r.person_id,
            "kind": r.kind,
            "from": r.from_value,
            "to": r.to_value,
            "reason": r.reason,
            "actor": r.actor,
            "at": r.corrected_at.isoformat(),
        }
        for r in connection.execute(
            select(manual_corrections)
            .order_by(manual_corrections.c.corrected_at.desc(), manual_corrections.c.id.desc())
            .limit(limit)
        )
    ]

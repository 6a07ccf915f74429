"""The desk's services on SQLite and PostgreSQL: the lead list's filters, order, bounded
count and full export; manual corrections in stage history, audit log and the weekly
report; a stratified, seeded, stored review sample, its marks and the wrong-call share."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import insert, select

from mqlengine.domain.sla import sla_state
from mqlengine.errors import ValidationError
from mqlengine.services.corrections import correct, corrections_report, week_of
from mqlengine.services.leads import LeadView, iter_leads, lead_page
from mqlengine.services.review import draw_sample, mark, review_report
from mqlengine.store.tables import persons, stage_history
from mqlengine.store.tables_access import audit_log
from support.clock import NOW
from support.rows import person_row


def _seed(db, n: int = 30) -> list[int]:  # type: ignore[no-untyped-def]
    ids: list[int] = []
    with db.begin() as c:
        for i in range(n):
            mql = i % 2 == 0
            row = person_row(
                email=f"p{i}@acme.io",
                stage="mql" if mql else "lead",
                total_score=float(i),
                channel="paid_search" if i % 3 else "email",
                mql_at=NOW - timedelta(days=8, hours=i) if mql else None,
                sla_due_at=NOW + timedelta(hours=1) if i % 4 == 0 else None,
            )
            pid = c.execute(insert(persons).values(**row)).inserted_primary_key[0]
            ids.append(int(pid))
            if mql:
                c.execute(
                    insert(stage_history).values(
                        person_id=pid,
                        from_stage="lead",
                        to_stage="mql",
                        changed_at=NOW - timedelta(days=8, hours=i),
                        reason="score",
                        actor="system",
                        recorded_at=NOW,
                        reactivated=False,
                        score_card={"total": float(i), "contributions": []},
                    )
                )
    return ids


def test_lead_list_filters_orders_counts_and_exports(db) -> None:  # type: ignore[no-untyped-def]
    _seed(db)
    with db.read() as c:
        page = lead_page(c, LeadView.parse({"stage": "mql", "size": "25"}), now=NOW)
        assert page.matching == 15 and not page.capped and not page.has_next
        totals = [r["total"] for r in page.rows]
        assert totals == sorted(totals, reverse=True)
        ranged = LeadView.parse({"score_min": "10", "score_max": "19.5", "channel": "email"})
        assert {r["id"] for r in iter_leads(c, ranged, now=NOW)} == {
            r["id"] for r in lead_page(c, ranged, now=NOW).rows
        }
        assert all(10 <= r["total"] <= 19.5 for r in iter_leads(c, ranged, now=NOW))
        soon = lead_page(c, LeadView.parse({"sla": "due_soon"}), now=NOW)
        assert soon.matching == 8 and {r["sla_state"] for r in soon.rows} == {"due_soon"}
        assert len(list(iter_leads(c, LeadView(), now=NOW, chunk=7))) == 30
    with pytest.raises(ValidationError, match="score_min"):
        LeadView.parse({"score_min": "lots"})
    with pytest.raises(ValidationError, match="score_min must not be after score_max"):
        LeadView.parse({"score_min": "5", "score_max": "1"})
    assert sla_state(NOW, NOW + timedelta(minutes=1), NOW) == "breached"


def test_manual_corrections_are_never_silent(db, definition) -> None:  # type: ignore[no-untyped-def]
    ids = _seed(db, 4)
    with db.begin() as c, pytest.raises(ValidationError, match="needs a reason"):
        correct(
            c,
            definition,
            ids[0],
            kind="stage",
            value="nurture",
            reason=" ",
            actor="boss",
            key_id=None,
            now=NOW,
        )
    with db.begin() as c:
        correct(
            c,
            definition,
            ids[0],
            kind="stage",
            value="nurture",
            reason="duplicate",
            actor="boss",
            key_id="k1",
            now=NOW,
        )
        correct(
            c,
            definition,
            ids[1],
            kind="score",
            value="77",
            reason="known buyer",
            actor="boss",
            key_id="k1",
            now=NOW,
        )
    with db.read() as c:
        history = (
            c.execute(
                select(stage_history).where(stage_history.c.action.in_(("manual", "manual_score")))
            )
            .mappings()
            .all()
        )
        assert {(h["to_stage"], h["actor"]) for h in history} == {
            ("nurture", "boss"),
            ("lead", "boss"),
        }
        assert c.execute(select(persons.c.total_score).where(persons.c.id == ids[1])).scalar() == 77
        actions = {r.action for r in c.execute(select(audit_log.c.action))}
        assert {"correction.stage", "correction.score"} <= actions
        weeks = corrections_report(
            c, since=NOW - timedelta(days=14), until=NOW + timedelta(seconds=1)
        )
        this = next(w for w in weeks["weeks"] if w["week"] == week_of(NOW).date().isoformat())
        assert this["manual"] == 2 and this["score"] == 1 and this["stage"] == 1


def test_review_sample_is_stratified_seeded_stored_and_reported(db) -> None:  # type: ignore[no-untyped-def]
    ids = _seed(db)
    with db.begin() as c:  # one accepted MQL, one rejected; the rest untouched
        for pid, action, to in ((ids[0], "accept", "sal"), (ids[2], "reject", "nurture")):
            c.execute(
                insert(stage_history).values(
                    person_id=pid,
                    from_stage="mql",
                    to_stage=to,
                    changed_at=NOW - timedelta(days=7),
                    reason="x",
                    actor="rep",
                    action=action,
                    recorded_at=NOW,
                    reactivated=False,
                )
            )
    week = week_of(NOW - timedelta(days=8))
    with db.begin() as c:
        first = draw_sample(c, week_start=week, n=4, team=None, seed=11, actor="t", now=NOW)
    strata = [i["stratum"] for i in first["items"]]
    assert "accepted" in strata and "rejected" in strata  # the rare strata are seen
    with db.begin() as c:
        again = draw_sample(c, week_start=week, n=4, team=None, seed=11, actor="t", now=NOW)
        assert [i["person_id"] for i in again["items"]] == [i["person_id"] for i in first["items"]]
        person = first["items"][0]["person_id"]
        with pytest.raises(ValidationError, match="needs a note"):
            mark(c, first["id"], person, verdict="wrong", note=None, actor="t", now=NOW)
        mark(c, first["id"], person, verdict="wrong", note="too eager", actor="t", now=NOW)
        mark(
            c,
            first["id"],
            first["items"][1]["person_id"],
            verdict="right",
            note=None,
            actor="t",
            now=NOW,
        )
    with db.read() as c:
        (row,) = review_report(c, now=NOW)["weeks"]
        assert row["marked"] == 2 and row["wrong"] == 1 and row["wrong_share"] == 0.5

"""The live model on the write path: a likelihood for every person scored.

:data:`STORE_LIKELIHOODS` is what the services bind into the write path (on
:class:`~mqlengine.ingest.qualify.Handoff`), so the API, imports, the demo, rescoring and
unmerge all ask the same model the same way. Per transaction it reads which model is live
(and, with ``predict.shadow``, the newest candidate), one indexed query; per chunk of
persons it reads their source, campaign and first sighting and their accounts' other
leads, builds the features (:mod:`mqlengine.predict.features`, as training does) and asks
the model once for the whole chunk. Without a live model nothing is read beyond that query
and scoring is exactly as without this module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select

from mqlengine.domain.person import Person
from mqlengine.domain.rules import Definition
from mqlengine.domain.scoring import Event, Likelihood, ScoreCard, with_likelihood
from mqlengine.ingest.qualify import ScoredPerson, scorer_for
from mqlengine.predict import registry
from mqlengine.predict.features import FeatureSpec, PersonAtMoment, to_frame
from mqlengine.store import repo
from mqlengine.store.tables import persons
from mqlengine.store.tables_predict import models

if TYPE_CHECKING:
    from mqlengine.predict.modeling import FittedModel

TOP = 5  # contributions kept on a score card


class Session:
    """The live model and a shadow candidate for one transaction."""

    def __init__(
        self,
        definition: Definition,
        live: tuple[int, FittedModel] | None,
        shadow: tuple[int, FittedModel] | None,
    ) -> None:
        self.definition = definition
        self.live = live
        self.shadow = shadow
        self.spec = FeatureSpec.for_definition(definition)
        self.scorer = scorer_for(definition)

    def rows(self, connection: Connection, people: Sequence[ScoredPerson]) -> list[dict[str, Any]]:
        """The feature rows of these persons as of their moments."""
        from mqlengine.predict.trainset import account_histories

        ids = [p.person_id for p in people]
        extra: dict[int, Any] = {}
        for part in repo.chunks(sorted(ids)):
            for row in connection.execute(
                select(
                    persons.c.id, persons.c.source, persons.c.campaign, persons.c.first_seen_at
                ).where(persons.c.id.in_(part))
            ):
                extra[row.id] = row
        histories = account_histories(
            connection,
            self.definition,
            {p.person_id: (p.row.account_id, p.moment) for p in people},
        )
        relevant = self.scorer.relevant
        rows = []
        for person in people:
            known = extra.get(person.person_id)
            rows.append(
                self.spec.row(
                    PersonAtMoment(
                        moment=person.moment,
                        profile=person.row.profile,
                        card=person.card,
                        events=[e for e in person.events if relevant(e)],
                        first_seen_at=known.first_seen_at if known is not None else None,
                        channel=person.row.channel,
                        source=known.source if known is not None else None,
                        campaign=known.campaign if known is not None else None,
                        account=histories.get(person.person_id),
                    )
                )
            )
        return rows

    def predict(
        self, connection: Connection, people: Sequence[ScoredPerson]
    ) -> tuple[Mapping[int, Likelihood], Mapping[int, Likelihood]]:
        rows = self.rows(connection, people)
        ids = [p.person_id for p in people]
        live = _likelihoods(self.live, rows, ids, explain=True) if self.live else {}
        shadow = _likelihoods(self.shadow, rows, ids, explain=False) if self.shadow else {}
        return live, shadow


def _likelihoods(
    entry: tuple[int, FittedModel], rows: list[dict[str, Any]], ids: list[int], *, explain: bool
) -> dict[int, Likelihood]:
    version, model = entry
    frame = to_frame(rows, model.features, model.categorical)
    values = model.predict(frame)
    tops: list[tuple[tuple[str, float], ...]] = [()] * len(ids)
    if explain:
        contributions, names = model.contributions(frame)
        for i in range(len(ids)):
            pairs = [
                (name, float(contributions[i][j]))
                for j, name in enumerate(names)
                if name != "bias" and contributions[i][j] != 0.0
            ]
            pairs.sort(key=lambda pair: -abs(pair[1]))
            tops[i] = tuple((name, round(value, 4)) for name, value in pairs[:TOP])
    return {pid: Likelihood(float(values[i]), version, tops[i]) for i, pid in enumerate(ids)}


class StoreLikelihoods:
    """The registry's live model (and shadow candidate), read per transaction."""

    def session(self, connection: Connection, definition: Definition) -> Session | None:
        wanted = ["live", "candidate"] if definition.predict.shadow else ["live"]
        live_id: int | None = None
        candidate_id: int | None = None
        for row in connection.execute(
            select(models.c.id, models.c.status).where(models.c.status.in_(wanted))
        ):
            if row.status == "live":
                live_id = max(live_id or 0, int(row.id))
            else:
                candidate_id = max(candidate_id or 0, int(row.id))
        if live_id is None and candidate_id is None:
            return None
        live = (live_id, registry.load(connection, live_id)) if live_id is not None else None
        shadow = (
            (candidate_id, registry.load(connection, candidate_id))
            if candidate_id is not None
            else None
        )
        return Session(definition, live, shadow)


STORE_LIKELIHOODS = StoreLikelihoods()


def explain_card(
    connection: Connection,
    definition: Definition,
    person_id: int,
    events: Sequence[Event],
    card: ScoreCard,
    moment: datetime,
) -> ScoreCard:
    """A read model's card with the live model's likelihood (unchanged without one)."""
    session = STORE_LIKELIHOODS.session(connection, definition)
    if session is None or session.live is None:
        return card
    from mqlengine.store.repositories.persons import persons_by_id

    row: Person | None = persons_by_id(connection, [person_id]).get(person_id)
    if row is None:
        return card
    live, _ = session.predict(connection, [ScoredPerson(person_id, row, moment, events, card)])
    found = live.get(person_id)
    if found is None:
        return card
    scorer = session.scorer
    if scorer.reads_likelihood:
        return scorer.score(row.profile, events, moment, likelihood=found)
    return with_likelihood(card, found)


def shadow_report(
    connection: Connection, definition: Definition, *, now: datetime, version: int | None = None
) -> dict[str, Any]:
    """How a shadow candidate compares with the live model on the same scorings:
    agreement of the decisions, flips each way, and, for the leads whose label window has
    closed, each model's calibration (mean predicted against observed, Brier score) on
    its first prediction of the lead."""
    from sqlalchemy import func

    from mqlengine.predict.labels import load_labels
    from mqlengine.store.tables_predict import model_shadow_scores as shadow

    if version is None:
        version = connection.execute(select(func.max(shadow.c.shadow_version))).scalar()
        if version is None:
            return {"shadow_version": None, "scorings": 0, "note": "no shadow scores recorded"}
    rows = connection.execute(
        select(shadow)
        .where(shadow.c.shadow_version == version)
        .order_by(shadow.c.as_of, shadow.c.id)
    ).all()
    agree = sum(1 for r in rows if r.live_qualifies == r.shadow_qualifies)
    gained = sum(1 for r in rows if r.shadow_qualifies and not r.live_qualifies)
    lost = sum(1 for r in rows if r.live_qualifies and not r.shadow_qualifies)
    first: dict[int, Any] = {}
    for r in rows:
        first.setdefault(r.person_id, r)
    labels = {x.person_id: x for x in load_labels(connection, definition.predict, now=now)}
    calibration: dict[str, Any] = {}
    for side in ("live", "shadow"):
        pairs = [
            (float(getattr(r, f"{side}_likelihood")), 1.0 if labels[pid].positive else 0.0)
            for pid, r in first.items()
            if pid in labels and getattr(r, f"{side}_likelihood") is not None
        ]
        if pairs:
            calibration[side] = {
                "leads": len(pairs),
                "mean_predicted": round(sum(p for p, _ in pairs) / len(pairs), 4),
                "observed_rate": round(sum(y for _, y in pairs) / len(pairs), 4),
                "brier": round(sum((p - y) ** 2 for p, y in pairs) / len(pairs), 4),
            }
        else:
            calibration[side] = None
    live_versions = sorted({r.live_version for r in rows if r.live_version is not None})
    return {
        "shadow_version": int(version),
        "live_versions": live_versions,
        "scorings": len(rows),
        "persons": len(first),
        "agreement": round(agree / len(rows), 4) if rows else None,
        "flips": {"to_mql": gained, "from_mql": lost},
        "calibration": calibration,
    }

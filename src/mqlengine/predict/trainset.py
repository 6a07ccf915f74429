"""The training set from the store, training into the registry, and evaluation.

Each labelled lead (:mod:`mqlengine.predict.labels`) becomes one row of features as of its
prediction moment (:mod:`mqlengine.predict.features`): the profile rebuilt from the
identify events sent up to the moment (a person without any is taken as it stands: nothing
dated says otherwise), its scoring events up to the moment, the score card then, and its
account's other leads then.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select

from mqlengine.domain.rules import Definition
from mqlengine.domain.scoring import Event, ScoreCard, Scorer
from mqlengine.errors import ValidationError
from mqlengine.ingest.profile import build_profile, deep_merge
from mqlengine.ingest.qualify import scorer_for
from mqlengine.ingest.validation import ignored_flags
from mqlengine.predict import drift, registry
from mqlengine.predict.features import AccountHistory, FeatureSpec, PersonAtMoment, to_frame
from mqlengine.predict.labels import Label, load_labels
from mqlengine.store import repo
from mqlengine.store.db import Database
from mqlengine.store.tables import accounts, events, persons, stage_history

MIN_CLASS = 10  # fewest positives (and negatives) worth learning from


@dataclass
class TrainSet:
    labels: list[Label]
    rows: list[dict[str, Any]]
    names: list[str]
    spec: FeatureSpec
    fingerprint: str

    @property
    def positives(self) -> int:
        return sum(1 for label in self.labels if label.positive)

    def frame(self) -> Any:
        return to_frame(self.rows, self.names)

    def y(self) -> Any:
        import numpy

        return numpy.array([1 if label.positive else 0 for label in self.labels], dtype=int)

    def window(self) -> tuple[datetime | None, datetime | None]:
        if not self.labels:
            return None, None
        return min(x.start for x in self.labels), max(x.start for x in self.labels)


def firmographics_of(profile: Mapping[str, Any]) -> dict[str, Any]:
    """The values a firmographics provider filled in (they describe the company, not the
    lead's progress, and are taken as they stand)."""
    enriched = profile.get("enriched")
    if not isinstance(enriched, Mapping):
        return {}
    found = {
        key: profile[key]
        for key, source in enriched.items()
        if source not in ("title", "email", "account") and key in profile
    }
    return found


def account_histories(
    connection: Connection,
    definition: Definition,
    wanted: Mapping[int, tuple[int | None, datetime]],
) -> dict[int, AccountHistory]:
    """Per person (account id, moment): the account's other leads first seen before the
    moment, and how many of them reached the label stage before it."""
    account_ids = sorted({a for a, _ in wanted.values() if a is not None})
    if not account_ids:
        return {}
    members, reached = _account_members(connection, definition, account_ids)
    return _histories_at(members, reached, wanted)


Members = dict[int, list[tuple[int, datetime]]]


def _account_members(
    connection: Connection, definition: Definition, account_ids: Sequence[int]
) -> tuple[Members, dict[int, datetime]]:
    """The accounts' leads (id, first seen) and when each first reached the label stage."""
    members: Members = defaultdict(list)
    for part in repo.chunks(account_ids):
        for row in connection.execute(
            select(persons.c.id, persons.c.account_id, persons.c.first_seen_at).where(
                persons.c.account_id.in_(part), persons.c.merged_into.is_(None)
            )
        ):
            members[row.account_id].append((row.id, row.first_seen_at))
    member_ids = sorted(pid for rows in members.values() for pid, _ in rows)
    reached: dict[int, datetime] = {}
    stages = definition.predict.reached_stages()
    for part in repo.chunks(member_ids):
        for hit in connection.execute(
            select(stage_history.c.person_id, stage_history.c.changed_at).where(
                stage_history.c.person_id.in_(part), stage_history.c.to_stage.in_(stages)
            )
        ):
            seen = reached.get(hit.person_id)
            if seen is None or hit.changed_at < seen:
                reached[hit.person_id] = hit.changed_at
    return members, reached


def _histories_at(
    members: Members,
    reached: Mapping[int, datetime],
    wanted: Mapping[int, tuple[int | None, datetime]],
) -> dict[int, AccountHistory]:
    result: dict[int, AccountHistory] = {}
    for person_id, (account_id, moment) in wanted.items():
        if account_id is None:
            continue
        others = [(pid, first) for pid, first in members.get(account_id, []) if pid != person_id]
        leads = sum(1 for _, first in others if first < moment)
        hits = sum(1 for pid, _ in others if pid in reached and reached[pid] < moment)
        result[person_id] = AccountHistory(leads, hits)
    return result


def features_at(
    connection: Connection,
    definition: Definition,
    moments: Mapping[int, datetime],
    *,
    spec: FeatureSpec | None = None,
    scorer: Scorer | None = None,
    cards: dict[int, ScoreCard] | None = None,
) -> dict[int, dict[str, Any]]:
    """Feature rows of persons as of their moments, from what the store held then
    (``cards``, when given, receives each person's score card as of its moment)."""
    known = PointInTime(connection, definition, sorted(moments), spec=spec, scorer=scorer)
    return known.rows(moments, cards=cards)


class PointInTime:
    """What the features of some persons are built from, read from the store once: their
    rows, identify events, scoring events and accounts. :meth:`rows` then gives their
    features as of any moments (a replay asks for every day) without reading again."""

    def __init__(
        self,
        connection: Connection,
        definition: Definition,
        ids: Sequence[int],
        *,
        spec: FeatureSpec | None = None,
        scorer: Scorer | None = None,
    ) -> None:
        self.definition = definition
        self.spec = spec or FeatureSpec.for_definition(definition)
        self.scorer = scorer or scorer_for(definition)
        ids = sorted(ids)
        rows: dict[int, Any] = {}
        row: Any
        columns = (
            persons.c.id,
            persons.c.traits,
            persons.c.profile,
            persons.c.flags,
            persons.c.account_id,
            persons.c.channel,
            persons.c.source,
            persons.c.campaign,
            persons.c.first_seen_at,
        )
        for part in repo.chunks(ids):
            for row in connection.execute(select(*columns).where(persons.c.id.in_(part))):
                rows[row.id] = row
        self.persons = rows
        account_traits: dict[int, Mapping[str, Any]] = {}
        account_ids = sorted({r.account_id for r in rows.values() if r.account_id is not None})
        for part in repo.chunks(account_ids):
            for row in connection.execute(
                select(accounts.c.id, accounts.c.traits).where(accounts.c.id.in_(part))
            ):
                account_traits[row.id] = row.traits or {}
        self.account_traits = account_traits
        said: dict[int, list[tuple[datetime, Mapping[str, Any]]]] = defaultdict(list)
        for part in repo.chunks(ids):
            for row in connection.execute(
                select(events.c.person_id, events.c.timestamp, events.c.properties)
                .where(events.c.person_id.in_(part), events.c.type == "identify")
                .order_by(events.c.timestamp, events.c.id)
            ):
                said[row.person_id].append((row.timestamp, row.properties or {}))
        self.said = said
        scorer_ = self.scorer
        self.scored = {
            pid: [e for e in found if scorer_.relevant(e)]
            for pid, found in repo.load_events(connection, ids).items()
        }
        self.members, self.reached = (
            _account_members(connection, definition, account_ids) if account_ids else ({}, {})
        )

    def rows(
        self, moments: Mapping[int, datetime], *, cards: dict[int, ScoreCard] | None = None
    ) -> dict[int, dict[str, Any]]:
        """Feature rows as of each person's moment (persons not read are left out)."""
        definition = self.definition
        rows = self.persons
        histories = _histories_at(
            self.members,
            self.reached,
            {pid: (rows[pid].account_id, moments[pid]) for pid in moments if pid in rows},
        )
        ignore = frozenset(ignored_flags(definition.validation))
        gmail = definition.identity.gmail_normalize
        result: dict[int, dict[str, Any]] = {}
        for pid in sorted(moments):
            row = rows.get(pid)
            if row is None:
                continue
            moment = moments[pid]
            profile: Mapping[str, Any]
            if self.said.get(pid):
                traits: dict[str, Any] = {}
                for at, values in self.said[pid]:
                    if at <= moment:
                        traits = deep_merge(traits, values)
                current = row.profile or {}
                profile = build_profile(
                    traits,
                    account_traits=self.account_traits.get(row.account_id)
                    if row.account_id
                    else None,
                    signal_flags=list(row.flags or []),
                    firmographics=firmographics_of(current) or None,
                    gmail_normalize=gmail,
                    ignore_flags=ignore,
                )
            else:
                profile = row.profile or {}
            cutoff = moment.timestamp()
            relevant: list[Event] = [e for e in self.scored.get(pid, []) if e.epoch <= cutoff]
            card = self.scorer.score(profile, relevant, moment)
            if cards is not None:
                cards[pid] = card
            result[pid] = self.spec.row(
                PersonAtMoment(
                    moment=moment,
                    profile=profile,
                    card=card,
                    events=relevant,
                    first_seen_at=row.first_seen_at,
                    channel=row.channel,
                    source=row.source,
                    campaign=row.campaign,
                    account=histories.get(pid),
                )
            )
        return result


def build_trainset(connection: Connection, definition: Definition, *, now: datetime) -> TrainSet:
    labels = load_labels(connection, definition.predict, now=now)
    spec = FeatureSpec.for_definition(definition)
    rows_by_person = features_at(
        connection, definition, {label.person_id: label.start for label in labels}, spec=spec
    )
    labels = [label for label in labels if label.person_id in rows_by_person]
    digest = hashlib.sha256(definition.content_hash.encode())
    for label in labels:
        digest.update(
            f"{label.person_id}|{label.start.isoformat()}|{int(label.positive)}\n".encode()
        )
    return TrainSet(
        labels=labels,
        rows=[rows_by_person[label.person_id] for label in labels],
        names=spec.names(),
        spec=spec,
        fingerprint=digest.hexdigest(),
    )


def _check(trainset: TrainSet, definition: Definition) -> None:
    predict = definition.predict
    rows, positives = len(trainset.labels), trainset.positives
    what = (
        f"leads labelled by 'reached {predict.label_reached} within {predict.within_days:g} "
        f"days of {'becoming an MQL' if predict.label_from == 'mql' else 'first being seen'}'"
    )
    if rows < predict.min_rows:
        raise ValidationError(
            f"too few labelled leads to learn from: {rows} {what}, predict.min_rows is "
            f"{predict.min_rows} (leads whose window has not closed are not labelled)"
        )
    if min(positives, rows - positives) < MIN_CLASS:
        raise ValidationError(
            f"{positives} of {rows} {what} are positive: at least {MIN_CLASS} of each "
            "outcome are needed"
        )


def _columns(frame: Any) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for name in frame.frame.columns:
        values = frame.frame[name]
        if name in frame.categorical:
            out[name] = [None if v is None or v != v else str(v) for v in values.astype("object")]
        else:
            out[name] = [None if math.isnan(v) else float(v) for v in values.to_numpy()]
    return out


def train_from_store(
    db: Database,
    definition: Definition,
    *,
    now: datetime,
    budget_s: float = 60,
    seed: int = 0,
    actor: str = "system",
    progress: Callable[[str], None] | None = None,
) -> registry.ModelEntry:
    """Train on the store's labelled leads and register the model as a candidate."""
    from mqlengine.predict.modeling import fit_best

    with db.read() as connection:
        trainset = build_trainset(connection, definition, now=now)
    _check(trainset, definition)
    if progress is not None:
        progress(f"{len(trainset.labels)} labelled leads, {trainset.positives} positive")
    frame = trainset.frame()
    model = fit_best(frame, trainset.y(), budget_s=budget_s, seed=seed, progress=progress)
    likelihood = [float(v) for v in model.predict(frame)]
    reference = drift.build_reference(_columns(frame), frame.categorical, likelihood)
    predict = definition.predict
    with db.begin() as connection:
        return registry.register(
            connection,
            model,
            label={
                "reached": predict.label_reached,
                "within_days": predict.within_days,
                "from": predict.label_from,
            },
            definition_version=definition.version,
            window=trainset.window(),
            rows=len(trainset.labels),
            positives=trainset.positives,
            fingerprint=trainset.fingerprint,
            reference=reference,
            now=now,
            actor=actor,
        )


def metrics(y: Sequence[int] | Any, p: Sequence[float] | Any) -> dict[str, float]:
    """ROC AUC, PR AUC (average precision), log loss and Brier score."""
    import numpy
    from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

    truth = numpy.asarray(y, dtype=int)
    prob = numpy.clip(numpy.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    return {
        "roc_auc": round(float(roc_auc_score(truth, prob)), 4),
        "pr_auc": round(float(average_precision_score(truth, prob)), 4),
        "log_loss": round(float(log_loss(truth, prob, labels=[0, 1])), 4),
        "brier": round(float(brier_score_loss(truth, prob)), 4),
    }


def evaluate_from_store(
    db: Database,
    definition: Definition,
    *,
    now: datetime,
    seed: int = 0,
    folds: int = 5,
    budget_s: float = 60,
) -> dict[str, Any]:
    """5-fold stratified cross-validation (fixed seed) of the tuned model, logistic
    regression, naive Bayes (Odoo CRM style, for comparison) and the rules (the
    definition's total score, mapped to a probability by a logistic fit on the training
    folds)."""
    import numpy
    from sklearn.model_selection import StratifiedKFold

    from mqlengine.predict.baselines import NaiveBayes
    from mqlengine.predict.modeling import FeatureFrame, fit_best, fit_logistic

    with db.read() as connection:
        trainset = build_trainset(connection, definition, now=now)
    _check(trainset, definition)
    frame = trainset.frame()
    y = trainset.y()
    pooled = {name: numpy.zeros(len(y)) for name in ("model", "logistic", "naive_bayes", "rules")}
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in splitter.split(numpy.zeros(len(y)), y):

        def part(index: Any, columns: list[str] | None = None) -> FeatureFrame:
            data = frame.frame.iloc[index].reset_index(drop=True)
            names = columns if columns is not None else list(data.columns)
            return FeatureFrame(
                frame=data[names], categorical=tuple(c for c in frame.categorical if c in names)
            )

        per_fold = budget_s / folds
        model = fit_best(part(train), y[train], budget_s=per_fold, seed=seed)
        pooled["model"][test] = model.predict(part(test))
        logistic = fit_logistic(part(train), y[train], seed=seed)
        pooled["logistic"][test] = logistic.predict(part(test))
        nb = NaiveBayes().fit(part(train).frame, y[train], frame.categorical)
        pooled["naive_bayes"][test] = nb.predict(part(test).frame)
        rules = fit_logistic(part(train, ["total"]), y[train], seed=seed)
        pooled["rules"][test] = rules.predict(part(test, ["total"]))
    return {
        "models": {name: metrics(y, values) for name, values in pooled.items()},
        "rows": len(y),
        "positives": int(y.sum()),
        "folds": folds,
        "seed": seed,
    }


def recent_population(
    connection: Connection, definition: Definition, *, now: datetime, days: int
) -> dict[int, dict[str, Any]]:
    """Feature rows, as of now, of the live persons seen in the last ``days`` days."""
    since = now - timedelta(days=days)
    ids = [
        row.id
        for row in connection.execute(
            select(persons.c.id).where(
                persons.c.merged_into.is_(None), persons.c.last_seen_at >= since
            )
        )
    ]
    return features_at(connection, definition, dict.fromkeys(ids, now))


def live_drift(connection: Connection, definition: Definition, *, now: datetime) -> dict[str, Any]:
    """PSI of each feature and of the likelihood: the live model's training set against
    the persons seen in the last ``predict.drift_window_days`` days (as of now)."""
    version = registry.live_version(connection)
    if version is None:
        return {"model_version": None, "warnings": [], "note": "no live model"}
    entry = registry.get(connection, version)
    model = registry.load(connection, version)
    predict = definition.predict
    population = recent_population(connection, definition, now=now, days=predict.drift_window_days)
    rows = list(population.values())
    columns: dict[str, list[Any]] = {}
    likelihood: list[float] = []
    if rows:
        frame = to_frame(rows, model.features, model.categorical)
        columns = _columns(frame)
        likelihood = [float(v) for v in model.predict(frame)]
    report = drift.drift_report(
        entry.reference, columns, likelihood, warn_psi=predict.drift_warn_psi
    )
    report["model_version"] = version
    report["window_days"] = predict.drift_window_days
    return report

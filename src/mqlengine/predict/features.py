"""The one definition of the likelihood's features, used by training and by serving.

Every feature is what was known at the prediction moment: the profile as it stood then
(training rebuilds it from the identify events up to the moment), the score card as of the
moment (fit, intent, each rule's points after decay), counts of the definition's events in
the 7, 30 and 90 days before it, recency, the first-touch channel, source and campaign, and
the account's other leads first seen before it and how many of them had reached the label
stage before it. Nothing after the moment enters: events after it are skipped here, and the
callers hand in the profile and the account figures as of the moment.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mqlengine.domain.conditions import (
    MISSING,
    AllOf,
    AnyOf,
    Compare,
    Condition,
    EventSeen,
    Not,
    Op,
    Subject,
    lookup_path,
)
from mqlengine.domain.rules import Definition
from mqlengine.domain.scoring import Event, ScoreCard

WINDOWS = (7, 30, 90)
DAY = 86_400.0
# traits that identify a person rather than describe one: never features
IDENTIFYING = frozenset(
    {
        "email",
        "email_domain",
        "phone",
        "name",
        "first_name",
        "last_name",
        "user_id",
        "external_id",
        "address",
    }
)
CATEGORICAL_FIXED = ("channel", "source", "campaign")


def feature_name(*parts: str) -> str:
    """A column name LightGBM accepts: letters, digits, ``_`` and ``.``, parts by ``__``."""
    return "__".join(re.sub(r"[^A-Za-z0-9_.]+", "_", part).strip("_") or "_" for part in parts)


@dataclass(frozen=True, slots=True)
class AccountHistory:
    """The account's other leads as of a moment."""

    leads_before: int = 0  # first seen before the moment
    positives_before: int = 0  # reached the label stage before the moment


@dataclass(frozen=True, slots=True)
class PersonAtMoment:
    """What both training and serving hand in for one person at one moment."""

    moment: datetime
    profile: Mapping[str, object]
    card: ScoreCard
    events: Sequence[Event]  # the person's scoring-relevant events (later ones are skipped)
    first_seen_at: datetime | None
    channel: str | None
    source: str | None
    campaign: str | None
    account: AccountHistory | None


@dataclass(frozen=True)
class FeatureSpec:
    """Which traits, rules and events a definition's features cover."""

    traits: tuple[str, ...]  # value features
    presence: tuple[str, ...]  # traits the definition only asks about existing: 0/1
    rules: tuple[str, ...]
    events: tuple[str, ...]

    @classmethod
    def for_definition(cls, definition: Definition) -> FeatureSpec:
        asked: dict[str, set[Op]] = {}
        if definition.predict.traits:
            for name in definition.predict.traits:
                asked.setdefault(name, set()).add(Op.EQUALS)
        else:
            conditions = [rule.when for rule in definition.fit_rules]
            conditions += [gate.when for gate in definition.exclusions]
            conditions += [gate.when for gate in definition.requirements]
            for condition in conditions:
                for name, op in _trait_ops(condition):
                    asked.setdefault(name, set()).add(op)
        traits = tuple(
            sorted(n for n, ops in asked.items() if ops != {Op.EXISTS} and n not in IDENTIFYING)
        )
        presence = tuple(sorted(n for n, ops in asked.items() if ops == {Op.EXISTS}))
        events = {rule.event for rule in definition.intent_rules}
        for path in definition.qualify.paths:
            events.update(_event_names(path.when))
        return cls(
            traits=traits,
            presence=presence,
            rules=tuple(
                [r.id for r in definition.fit_rules] + [r.id for r in definition.intent_rules]
            ),
            events=tuple(sorted(events)),
        )

    def names(self) -> list[str]:
        names = [feature_name("trait", t) for t in self.traits]
        names += [feature_name("has", t) for t in self.presence]
        names += ["fit", "intent", "total"]
        names += [feature_name("rule", r) for r in self.rules]
        names += [feature_name(f"events_{w}d", e) for e in self.events for w in WINDOWS]
        names += ["days_since_last_event", "days_since_first_seen", *CATEGORICAL_FIXED]
        names += ["account_leads_before", "account_positives_before"]
        return names

    def row(self, person: PersonAtMoment) -> dict[str, Any]:
        """The feature values of one person at one moment (str: categorical; float, NaN
        when unknown: numeric)."""
        moment_ts = person.moment.timestamp()
        profile = person.profile
        values: dict[str, Any] = {}
        for trait in self.traits:
            values[feature_name("trait", trait)] = _trait_value(lookup_path(profile, trait))
        for trait in self.presence:
            found = lookup_path(profile, trait)
            values[feature_name("has", trait)] = 0.0 if _absent(found) else 1.0
        card = person.card
        values["fit"], values["intent"], values["total"] = card.fit, card.intent, card.total
        points = {c.rule_id: c.points for c in card.contributions}
        for rule in self.rules:
            values[feature_name("rule", rule)] = float(points.get(rule, 0.0))
        counts = {(e, w): 0.0 for e in self.events for w in WINDOWS}
        last: float | None = None
        for event in person.events:
            age = moment_ts - event.epoch
            if age < 0:
                continue  # after the moment: not known yet
            if last is None or event.epoch > last:
                last = event.epoch
            days = age / DAY
            for window in WINDOWS:
                key = (event.name, window)
                if days <= window and key in counts:
                    counts[key] += 1.0
        for (event_name, window), count in counts.items():
            values[feature_name(f"events_{window}d", event_name)] = count
        values["days_since_last_event"] = (moment_ts - last) / DAY if last is not None else math.nan
        first = person.first_seen_at
        values["days_since_first_seen"] = (
            max(0.0, (moment_ts - first.timestamp()) / DAY) if first is not None else math.nan
        )
        values["channel"] = person.channel
        values["source"] = person.source
        values["campaign"] = person.campaign
        account = person.account
        values["account_leads_before"] = float(account.leads_before) if account else math.nan
        values["account_positives_before"] = (
            float(account.positives_before) if account else math.nan
        )
        return values


def _absent(value: object) -> bool:
    return value is MISSING or value is None or value == "" or value == []


def _trait_value(value: object) -> str | float | None:
    if _absent(value):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, list | tuple):
        return ",".join(sorted(str(v) for v in value)) or None
    if isinstance(value, Mapping):
        return None
    return str(value).strip().casefold() or None


def _trait_ops(condition: Condition) -> Iterable[tuple[str, Op]]:
    if isinstance(condition, Compare):
        if condition.subject is Subject.TRAIT:
            yield condition.name, condition.op
    elif isinstance(condition, AllOf | AnyOf):
        for item in condition.items:
            yield from _trait_ops(item)
    elif isinstance(condition, Not):
        yield from _trait_ops(condition.item)


def _event_names(condition: Condition) -> Iterable[str]:
    if isinstance(condition, EventSeen):
        yield condition.event
    elif isinstance(condition, AllOf | AnyOf):
        for item in condition.items:
            yield from _event_names(item)
    elif isinstance(condition, Not):
        yield from _event_names(condition.item)


def to_frame(
    rows: Sequence[Mapping[str, Any]],
    names: Sequence[str],
    categorical: Sequence[str] | None = None,
) -> Any:
    """The rows as a :class:`~mqlengine.predict.modeling.FeatureFrame`: the columns named
    ``categorical`` (default: those whose values are text, and channel, source, campaign)
    are categorical, the others numeric."""
    import numpy
    import pandas

    from mqlengine.predict.modeling import FeatureFrame

    columns: dict[str, Any] = {}
    chosen: list[str] = []
    for name in names:
        values = [row.get(name) for row in rows]
        if (
            name in categorical
            if categorical is not None
            else name in CATEGORICAL_FIXED or any(isinstance(v, str) for v in values)
        ):
            chosen.append(name)
            columns[name] = pandas.Categorical([v if isinstance(v, str) else None for v in values])
        else:
            columns[name] = numpy.array(
                [math.nan if v is None else float(v) for v in values], dtype=float
            )
    frame = pandas.DataFrame(columns, index=range(len(rows)))
    return FeatureFrame(frame=frame, categorical=tuple(chosen))

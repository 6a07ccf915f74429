"""The Spark batch engine: the definition compiled to Spark Column expressions.

Gives the reference engine's cards (:class:`~mqlengine.batch.engine.PythonEngine`, which
runs the online :class:`~mqlengine.domain.scoring.Scorer`) on a local Spark, a standalone
cluster or through Spark Connect. No Python runs per row: profiles and properties are
parsed into VARIANTs, conditions are Column expressions (:mod:`.sparkcompile`), and the
arithmetic is done in the reference's order — per event ``points × 0.5^(age/half_life)``
with ``age`` from POSIX seconds as doubles, each rule's hits summed in canonical order
(timestamp, event id) with an ordered ``aggregate``, rule sums in definition order — so
figures agree to the last bit but for ``pow`` (Java's and C's differ by at most one ulp).

The plan per scoring:

1. persons: profile → VARIANT; fit rules, exclusions, requirements, tracking consent;
2. events up to ``as_of`` of tracked persons, only the names some rule or path reads;
   each event exploded to the intent rules it matches, with its decayed points;
3. ``once`` / ``once_per_day`` keep the latest hit per rule (per UTC day); the window
   (``within_days``) drops older hits; per (person, rule) the hits are summed in order and
   capped; per person the latest time of each event a qualification path asks about;
4. persons joined with 3: caps, paths, verdicts, ``next_stage``, ``rule_points`` JSON.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from mqlengine.batch.engine import CARDS_SCHEMA, BatchInput
from mqlengine.batch.sparkcompile import (
    Scope,
    SparkCompileError,
    condition,
    kind_of,
    lookup,
    materialize,
    trait_at,
)
from mqlengine.domain.conditions import (
    AllOf,
    AnyOf,
    Compare,
    Condition,
    EventSeen,
    Not,
    ScoreAtLeast,
    ScoreField,
    Subject,
    events_named,
)
from mqlengine.domain.lifecycle import Stage
from mqlengine.domain.rules import Definition, Repeat
from mqlengine.domain.scoring import SECONDS_PER_DAY

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

MICROS_PER_DAY = 86_400_000_000


def _micros(days: float, where: str) -> int:
    """``timedelta(days=days)`` in microseconds, rounded as Python rounds it."""
    try:
        return timedelta(days=days) // timedelta(microseconds=1)
    except (OverflowError, ValueError):
        raise SparkCompileError(where, f"{days:g} days is out of range") from None


def _names(item: Condition | None, subject: Subject) -> list[str]:
    if isinstance(item, Compare):
        return [item.name] if item.subject is subject else []
    if isinstance(item, AllOf | AnyOf):
        return [name for part in item.items for name in _names(part, subject)]
    if isinstance(item, Not):
        return _names(item.item, subject)
    return []


def _pick(index: Column, values: list[Any]) -> Column:
    """The constant ``values[index]`` (per row)."""
    from pyspark.sql import functions as F

    result = F.lit(values[-1])
    for position in range(len(values) - 2, -1, -1):
        result = F.when(index == position, F.lit(values[position])).otherwise(result)
    return result


def _cap(value: Column, cap: float | None) -> Column:
    """``value if cap is None or not cap < value else cap`` (the reference's clamp)."""
    from pyspark.sql import functions as F

    if cap is None:
        return value
    return F.when(F.lit(cap) < value, F.lit(cap)).otherwise(value)


def _points_json(value: Column) -> Column:
    """``repr(round(value, 4))``, as ``json.dumps`` writes a rule's points."""
    from pyspark.sql import functions as F

    text = value.cast("decimal(38,4)").cast("string")
    text = F.regexp_replace(F.regexp_replace(text, "0+$", ""), r"\.$", ".0")
    return F.when((value < 0) & (text == "0.0"), F.lit("-0.0")).otherwise(text)


class SparkEngine:
    """The batch contract on Spark. ``session``: an existing SparkSession; else one is
    made for ``master`` (``local[*]`` by default, or ``spark://host:7077``) or ``remote``
    (Spark Connect, ``sc://host:15002``) with ``conf``."""

    name = "spark"

    def __init__(
        self,
        session: SparkSession | None = None,
        master: str | None = None,
        *,
        remote: str | None = None,
        conf: dict[str, str] | None = None,
    ) -> None:
        if session is not None and (master or remote):
            raise ValueError("give a session, or a master or remote URL, not both")
        if master and remote:
            raise ValueError("give a master URL or a Spark Connect URL, not both")
        self._session = session
        self._master = master
        self._remote = remote
        self._conf = dict(conf or {})

    @property
    def session(self) -> SparkSession:
        if self._session is None:
            from mqlengine.batch.sparkopts import make_session

            self._session = make_session(master=self._master, remote=self._remote, conf=self._conf)
        return self._session

    # -- the contract --------------------------------------------------------------------

    def score(self, definition: Definition, data: BatchInput, as_of: datetime) -> pa.Table:
        spark = self.session
        persons = spark.createDataFrame(
            data.persons.select(["person_id", "profile", "stage", "recycled_at"])
        )
        events = spark.createDataFrame(
            data.events.select(["person_id", "event_id", "name", "timestamp", "properties"])
        )
        return to_cards(self.score_frames(definition, persons, events, as_of))

    def check(self, definition: Definition) -> None:
        """Compile the definition without running a job: raises :class:`SparkCompileError`
        for what has no Spark form."""
        spark = self.session
        persons = spark.createDataFrame(pa.Table.from_pylist([], _PERSONS_ARROW))
        events = spark.createDataFrame(pa.Table.from_pylist([], _EVENTS_ARROW))
        self.score_frames(definition, persons, events, datetime.now(UTC))

    # -- the plan ------------------------------------------------------------------------

    def score_frames(
        self, definition: Definition, persons: DataFrame, events: DataFrame, as_of: datetime
    ) -> DataFrame:
        """Cards as a Spark DataFrame (``CARDS_SCHEMA`` columns, ordered by person id) from
        DataFrames with the batch input's columns; nothing runs until it is read."""
        from pyspark.sql import functions as F

        moment = as_of.replace(tzinfo=UTC) if as_of.tzinfo is None else as_of.astimezone(UTC)
        as_of_ts = moment.timestamp()
        as_of_micros = (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)

        # 1. persons --------------------------------------------------------------------
        trait_names: list[str] = []
        conditions: list[Condition | None] = [r.when for r in definition.fit_rules]
        conditions += [g.when for g in (*definition.exclusions, *definition.requirements)]
        conditions += [p.when for p in definition.qualify.paths]
        for item in conditions:
            for name in _names(item, Subject.TRAIT):
                if name not in trait_names:
                    trait_names.append(name)
        consent = trait_at(F.col("__doc"), definition.consent.tracking_trait, "consent")
        persons = persons.select(
            "person_id", "stage", "recycled_at", F.parse_json(F.col("profile")).alias("__doc")
        )
        persons, values = materialize(
            persons,
            [
                (f"__t{i}", lookup(F.col("__doc"), name, f"trait {name}"))
                for i, name in enumerate(trait_names)
            ],
        )
        traits = Scope("traits")
        for name, value in zip(trait_names, values, strict=True):
            traits.values[(Subject.TRAIT, name)] = value
        persons = persons.withColumn(
            "__untracked", (kind_of(consent) == "bool") & ~F.variant_get(consent, "$", "boolean")
        )
        fit_raw: Column = F.lit(0.0)
        fit_hits: list[Column] = []
        fit_columns = []
        for index, fit_rule in enumerate(definition.fit_rules):
            traits.where = f"fit rule {fit_rule.id}"
            fit_columns.append(condition(fit_rule.when, traits).alias(f"__fit{index}"))
            fit_hits.append(F.col(f"__fit{index}"))
        persons = persons.select("*", *fit_columns)
        for index, fit_rule in enumerate(definition.fit_rules):
            fit_raw = fit_raw + F.when(fit_hits[index], F.lit(fit_rule.points)).otherwise(0.0)

        def gates(kind: str, items: tuple[Any, ...], negate: bool) -> Column:
            if not items:
                return F.array().cast("array<string>")
            parts = []
            for gate in items:
                traits.where = f"{kind} {gate.id}"
                test = condition(gate.when, traits)
                parts.append(F.when(~test if negate else test, F.lit(gate.id)))
            return F.filter(F.array(*parts), lambda x: x.isNotNull())

        persons = persons.select(
            "*",
            _cap(fit_raw, definition.fit_cap).alias("__fitv"),
            gates("exclusion", definition.exclusions, False).alias("excluded_because"),
            gates("requirement", definition.requirements, True).alias("missing_requirements"),
        )

        # 2. events ---------------------------------------------------------------------
        rules = definition.intent_rules
        path_events: list[str] = []
        for path in definition.qualify.paths:
            for name in events_named(path.when):
                if name not in path_events:
                    path_events.append(name)
        wanted = sorted({r.event for r in rules} | set(path_events))
        epoch = F.unix_micros(F.col("timestamp")) / F.lit(1_000_000.0)
        tracked = persons.where(~F.col("__untracked")).select("person_id")
        past = (
            events.where(F.col("name").isin(wanted))
            .select(
                "person_id",
                "event_id",
                "name",
                F.unix_micros(F.col("timestamp")).alias("__micros"),
                epoch.alias("__epoch"),
                "properties",
            )
            .where(F.col("__epoch") <= F.lit(as_of_ts))
            .join(tracked, "person_id", "left_semi")
        )
        aggregates: list[DataFrame] = []
        if rules:
            prop_names: list[str] = []
            for rule in rules:
                for name in _names(rule.where, Subject.PROPERTY):
                    if name not in prop_names:
                        prop_names.append(name)
            past = past.withColumn("__props", F.parse_json(F.col("properties")))
            past, values = materialize(
                past,
                [
                    (f"__p{i}", lookup(F.col("__props"), name, f"property {name}"))
                    for i, name in enumerate(prop_names)
                ],
            )
            props = Scope("properties")
            for name, value in zip(prop_names, values, strict=True):
                props.values[(Subject.PROPERTY, name)] = value
            matches = []
            for index, rule in enumerate(rules):
                props.where = f"intent rule {rule.id}"
                test = F.col("name") == F.lit(rule.event)
                if rule.where is not None:
                    test = test & condition(rule.where, props)
                matches.append(F.when(test, F.lit(index)))
            hits = past.select(
                "person_id",
                "event_id",
                "__micros",
                "__epoch",
                F.explode(F.filter(F.array(*matches), lambda x: x.isNotNull())).alias("rule"),
            )
            rule_col = F.col("rule")
            half_life = _pick(rule_col, [float(definition.intent_half_life(r)) for r in rules])
            points = _pick(rule_col, [float(r.points) for r in rules])
            starts = [
                None if r.within_days is None else as_of_ts - r.within_days * SECONDS_PER_DAY
                for r in rules
            ]
            seconds = F.lit(as_of_ts) - F.col("__epoch")
            age = F.when(seconds > 0.0, seconds / F.lit(SECONDS_PER_DAY)).otherwise(F.lit(0.0))
            factor = F.when(half_life > 0, F.pow(F.lit(0.5), age / half_life)).otherwise(1.0)
            hits = hits.select(
                "person_id",
                "rule",
                "__micros",
                F.struct(
                    F.col("__epoch").alias("epoch"),
                    F.col("event_id").alias("id"),
                    (points * factor).alias("points"),
                ).alias("hit"),
            )
            if any(s is not None for s in starts):
                start = _pick(rule_col, [s if s is not None else float("-inf") for s in starts])
                hits = hits.where(F.col("hit.epoch") >= start)
            repeats = [r.repeat for r in rules]
            if any(r is not Repeat.EVERY_TIME for r in repeats):
                # the UTC day (exact in integers, also before 1970)
                micros = F.col("__micros")
                day = micros - F.pmod(micros, F.lit(MICROS_PER_DAY))
                bucket = F.lit(None).cast("long")
                for index, repeat in enumerate(repeats):
                    if repeat is Repeat.ONCE:
                        bucket = F.when(rule_col == index, F.lit(0).cast("long")).otherwise(bucket)
                    elif repeat is Repeat.ONCE_PER_DAY:
                        bucket = F.when(rule_col == index, day).otherwise(bucket)
                hits = hits.withColumn("__bucket", bucket)
                latest = (
                    hits.where(F.col("__bucket").isNotNull())
                    .groupBy("person_id", "rule", "__bucket")
                    .agg(F.max("hit").alias("hit"))
                    .select("person_id", "rule", "hit")
                )
                hits = (
                    hits.where(F.col("__bucket").isNull())
                    .select("person_id", "rule", "hit")
                    .unionByName(latest)
                )
            earned = F.aggregate(
                F.array_sort(F.collect_list("hit")),
                F.lit(0.0),
                lambda total, hit: total + hit["points"],
            )
            per_rule = hits.groupBy("person_id", "rule").agg(earned.alias("earned"))
            caps = [r.cap for r in rules]
            capped = F.col("earned")
            if any(c is not None for c in caps):
                cap = _pick(rule_col, [float(c) if c is not None else float("inf") for c in caps])
                capped = F.when(cap < capped, cap).otherwise(capped)
                capped = F.when(-cap > capped, -cap).otherwise(capped)
            per_rule = per_rule.select("person_id", "rule", "earned", capped.alias("capped"))
            aggregates.append(
                per_rule.groupBy("person_id").agg(
                    *[
                        F.max(F.when(rule_col == i, F.col("earned"))).alias(f"__earned{i}")
                        for i in range(len(rules))
                    ],
                    *[
                        F.max(F.when(rule_col == i, F.col("capped"))).alias(f"__points{i}")
                        for i in range(len(rules))
                    ],
                )
            )
        if path_events:
            aggregates.append(
                past.groupBy("person_id").agg(
                    *[
                        F.max(F.when(F.col("name") == name, F.col("__micros"))).alias(f"__seen{i}")
                        for i, name in enumerate(path_events)
                    ]
                )
            )

        # 4. cards ----------------------------------------------------------------------
        cards = persons
        for aggregate in aggregates:
            cards = cards.join(aggregate, "person_id", "left")
        fit = F.col("__fitv")
        intent_raw: Column = F.lit(0.0)
        for i in range(len(rules)):
            intent_raw = intent_raw + F.coalesce(F.col(f"__points{i}"), F.lit(0.0))
        intent = _cap(intent_raw, definition.intent_cap)
        cards = cards.select("*", fit.alias("fit"), intent.alias("intent"))
        cards = cards.withColumn(
            "total", _cap(F.col("fit") + F.col("intent"), definition.qualify.total_cap)
        )

        fit_index = {r.id: i for i, r in enumerate(definition.fit_rules)}
        intent_index = {r.id: i for i, r in enumerate(rules)}

        def rule_earned(rule_id: str) -> Column:
            if rule_id in fit_index:
                i = fit_index[rule_id]
                return fit_hits[i] & F.lit(definition.fit_rules[i].points > 0)
            if rule_id in intent_index:
                return F.coalesce(F.col(f"__earned{intent_index[rule_id]}") > 0, F.lit(False))
            return F.lit(False)

        def event_seen(item: EventSeen) -> Column:
            latest = F.col(f"__seen{path_events.index(item.event)}")
            if item.within_days is None:
                return latest.isNotNull()
            since = as_of_micros - _micros(item.within_days, f"path event {item.event}")
            return F.coalesce(latest >= F.lit(since), F.lit(False))

        def score(item: ScoreAtLeast) -> Column:
            if item.field is ScoreField.LIKELIHOOD:
                return F.lit(False)  # batch engines score rules only: no likelihood
            column = {ScoreField.FIT: "fit", ScoreField.INTENT: "intent"}.get(item.field, "total")
            return F.col(column) >= F.lit(item.minimum)

        traits.rule_earned = rule_earned
        traits.event_seen = event_seen
        traits.score = score
        qualify = definition.qualify
        matched: Column = F.lit(None).cast("int")
        for index in range(len(qualify.paths) - 1, -1, -1):
            traits.where = f"qualify path {qualify.paths[index].type}"
            test = condition(qualify.paths[index].when, traits)
            matched = F.when(test, F.lit(index)).otherwise(matched)
        cards = cards.withColumn("__path", matched)
        path_col = F.col("__path")
        fit_enough = F.col("fit") >= F.lit(qualify.min_fit)
        meets = (F.col("total") >= F.lit(qualify.threshold)) & fit_enough
        gated = (F.size("excluded_because") == 0) & (F.size("missing_requirements") == 0)
        bypass: Column = F.lit(False)
        for index, qualify_path in enumerate(qualify.paths):
            if qualify_path.bypass_threshold:
                bypass = bypass | (path_col == index)
        bypass = F.coalesce(bypass, F.lit(False)) & fit_enough
        retain_from = qualify.threshold - qualify.hysteresis
        cards = cards.select(
            "*",
            meets.alias("meets_threshold"),
            (gated & (meets | bypass)).alias("qualifies"),
            (gated & (((F.col("total") >= F.lit(retain_from)) & fit_enough) | bypass)).alias(
                "retains"
            ),
        )
        types: Column = F.lit(qualify.default_type)
        for index in range(len(qualify.paths) - 1, -1, -1):
            types = F.when(path_col == index, F.lit(qualify.paths[index].type)).otherwise(types)
        mql_type = F.when(F.col("qualifies"), types)

        entries: list[tuple[str, Column]] = []
        for i, fit_rule in enumerate(definition.fit_rules):
            entries.append((fit_rule.id, F.when(fit_hits[i], _points_json(F.lit(fit_rule.points)))))
        for i, intent_rule in enumerate(rules):
            entries.append((intent_rule.id, _points_json(F.col(f"__points{i}"))))
        entries.sort(key=lambda entry: entry[0])
        parts = [F.concat(F.lit(json.dumps(key) + ": "), text) for key, text in entries]
        rule_points = F.concat(
            F.lit("{"), F.concat_ws(", ", *parts) if parts else F.lit(""), F.lit("}")
        )

        stage = F.col("stage")
        cooldown = _micros(qualify.recycle_cooldown_days, "qualify.recycle_cooldown_days")
        cooling = F.col("recycled_at").isNotNull() & (
            F.lit(as_of_micros) < F.unix_micros(F.col("recycled_at")) + F.lit(cooldown)
        )
        next_stage = (
            F.when(
                ~stage.isin([s.value for s in Stage]),
                F.raise_error(
                    F.concat(
                        F.lit("person "),
                        F.col("person_id").cast("string"),
                        F.lit(": unknown stage "),
                        F.coalesce(stage, F.lit("null")),
                    )
                ).cast("string"),
            )
            .when((stage == "lead") & F.col("qualifies"), F.lit("mql"))
            .when((stage == "nurture") & F.col("qualifies") & ~cooling, F.lit("mql"))
            .when((stage == "mql") & ~F.col("retains"), F.lit("lead"))
        )
        return cards.select(
            "person_id",
            "fit",
            "intent",
            "total",
            "meets_threshold",
            "qualifies",
            "retains",
            mql_type.alias("mql_type"),
            "excluded_because",
            "missing_requirements",
            rule_points.alias("rule_points"),
            next_stage.alias("next_stage"),
        ).orderBy("person_id")


_PERSONS_ARROW = pa.schema(
    [
        ("person_id", pa.int64()),
        ("profile", pa.string()),
        ("stage", pa.string()),
        ("recycled_at", pa.timestamp("us", tz="UTC")),
    ]
)
_EVENTS_ARROW = pa.schema(
    [
        ("person_id", pa.int64()),
        ("event_id", pa.string()),
        ("name", pa.string()),
        ("timestamp", pa.timestamp("us", tz="UTC")),
        ("properties", pa.string()),
    ]
)


def to_cards(frame: DataFrame) -> pa.Table:
    """A cards DataFrame read into an Arrow table in :data:`CARDS_SCHEMA`."""
    table = frame.toArrow()
    columns = [
        table.column(field.name).cast(field.type) for field in CARDS_SCHEMA
    ]  # list item names and nullability as the contract has them
    return pa.Table.from_arrays(columns, schema=CARDS_SCHEMA)

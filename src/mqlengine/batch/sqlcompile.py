"""A definition compiled to one DuckDB query: the online scorer's semantics, set-wise.

:class:`SqlCompiler` turns a :class:`~mqlengine.domain.rules.Definition` into SQL over two
relations — persons (``person_id``, ``profile`` JSON text, ``stage``, ``recycled_at``) and
events (``person_id``, ``event_id``, ``name``, ``timestamp``, ``properties`` JSON text) —
that returns the columns of :data:`~mqlengine.batch.engine.CARDS_SCHEMA`. Every condition
and rule kind of ``domain/conditions.py`` and ``domain/rules.py`` has its SQL form here;
what cannot be expressed exactly (a Python-only regular expression, ``equals`` with a list)
raises :class:`SqlUnsupported` naming the rule, so a definition is never scored wrongly.

Semantics followed, as ``domain/scoring.py`` has them:

- a trait or property is read like ``lookup_path`` (an exact dotted key wins over nesting);
  missing values make every operator false except ``exists: false``; strings compare
  ignoring case (Unicode case folding), numbers in strings count as numbers, booleans
  match only booleans or the words true/false;
- an intent rule's events (those at or before ``as_of``) pass its window, then its repeat
  policy in canonical order (timestamp, then event id): ``once`` keeps the latest,
  ``once_per_day`` the latest of each UTC day; each hit earns ``points * 0.5 ** (age /
  half_life)``, summed in canonical order, and the rule's cap bounds the magnitude;
- fit and intent caps bound from above, then the total cap; exclusions, requirements,
  qualification paths (first match wins; trait parts, event-seen windows, score floors,
  rules earned), threshold, minimum fit, hysteresis and the lifecycle's next stage
  (``decide_on_score`` with the recycle cool-down);
- a person whose tracking consent is withdrawn earns nothing from events.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from mqlengine.domain.conditions import (
    AllOf,
    AnyOf,
    Compare,
    Condition,
    EventSeen,
    Not,
    Op,
    RuleEarned,
    ScoreAtLeast,
    ScoreField,
    Subject,
    events_named,
)
from mqlengine.domain.rules import Definition, Repeat
from mqlengine.errors import ValidationError

US_PER_DAY = 86_400_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Characters whose Unicode case folding differs from lower-casing (Python's casefold
# against DuckDB's lower): applied after lower().
_FOLDS = (("ß", "ss"), ("ς", "σ"), ("ﬁ", "fi"), ("ﬂ", "fl"), ("ﬀ", "ff"), ("ſ", "s"))
_INFO = re.compile(r"(\w+_info\[\d+\])\.v")
_INFO_TYPE = "STRUCT(v JSON, t VARCHAR, x VARCHAR)"
_NUMERIC_TYPES = "('BIGINT', 'UBIGINT', 'DOUBLE', 'HUGEINT')"
# Python's str.strip() whitespace (ASCII part; the rest is rare in traits)
_WS = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0"


class SqlUnsupported(ValidationError):
    """A part of a definition that has no exact DuckDB form (score it with the python
    engine)."""


def lit(value: object) -> str:
    """A SQL literal for a Python string, number or boolean."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return f"CAST({value} AS DOUBLE)" if abs(value) >= 2**63 else str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "CAST('nan' AS DOUBLE)"
        if math.isinf(value):
            return f"CAST('{'inf' if value > 0 else '-inf'}' AS DOUBLE)"
        return f"CAST({value!r} AS DOUBLE)"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise SqlUnsupported(f"no SQL literal for {value!r}")


def json_path(parts: Sequence[str]) -> str:
    """A JSON path literal selecting nested keys (each quoted)."""
    quoted = []
    for part in parts:
        if '"' in part or "\\" in part:
            raise SqlUnsupported(f"a name with a quote or backslash ({part!r}) has no SQL path")
        quoted.append(f'"{part}"')
    return lit("$." + ".".join(quoted))


def lookup(doc: str, name: str, paths: dict[str, int] | None = None) -> str:
    """SQL for ``lookup_path(doc, name)``: JSON (SQL NULL when missing). An exact key with
    dots wins over nesting, even when its value is null.

    With ``paths``, the JSON paths are registered there and read as elements of the list
    ``{doc}_info`` (one ``json_extract`` of all paths: the document is parsed once; see
    :func:`_extract_all`)."""

    def extract(path: str) -> str:
        if paths is None:
            return f"json_extract({doc}, {path})"
        index = paths.setdefault(path, len(paths) + 1)
        return f"{doc}_info[{index}].v"

    exact = extract(json_path([name]))
    if "." not in name:
        return exact
    return f"COALESCE({exact}, {extract(json_path(name.split('.')))})"


def fold(text: str) -> str:
    """SQL case folding of a VARCHAR expression."""
    expression = f"lower({text})"
    for source, target in _FOLDS:
        expression = f"replace({expression}, {lit(source)}, {lit(target)})"
    return expression


class _Value:
    """SQL fragments describing one JSON value expression ``v``."""

    def __init__(self, v: str) -> None:
        self.v = v
        self.type = f"json_type({v})"
        self.text = f"json_extract_string({v}, '$')"
        found = _INFO.fullmatch(v)
        if found:  # a value read once per document, with its type and text (_extract_all)
            self.type, self.text = f"{found[1]}.t", f"{found[1]}.x"

    @property
    def folded(self) -> str:
        return fold(self.text)

    @property
    def present(self) -> str:
        # not missing, not null, not "" and not []
        return (
            f"({self.v} IS NOT NULL AND {self.type} <> 'NULL'"
            f" AND NOT ({self.type} = 'VARCHAR' AND {self.text} = '')"
            f" AND NOT ({self.type} = 'ARRAY' AND json_array_length({self.v}) = 0))"
        )

    @property
    def number(self) -> str:
        """Python's ``_number``: ints and floats, and strings that parse as floats."""
        return (
            f"(CASE WHEN {self.type} IN {_NUMERIC_TYPES} THEN TRY_CAST({self.text} AS DOUBLE)"
            f" WHEN {self.type} = 'VARCHAR'"
            f" THEN TRY_CAST(trim({self.text}, {lit(_WS)}) AS DOUBLE) END)"
        )

    def equal(self, expected: object) -> str:
        """Python's ``_equal(actual, expected)`` for a constant ``expected``."""
        if isinstance(expected, bool):
            word = lit(str(expected).lower())
            return (
                f"(({self.type} = 'BOOLEAN' AND {self.text} = {word})"
                f" OR ({self.type} = 'VARCHAR' AND lower(trim({self.text}, {lit(_WS)})) = {word}))"
            )
        if expected is None:
            return "FALSE"
        if isinstance(expected, int | float):
            if isinstance(expected, float) and math.isnan(expected):
                return "FALSE"
            return f"({self.type} <> 'BOOLEAN' AND {self.number} = {lit(float(expected))})"
        if isinstance(expected, str):
            return f"({self.type} = 'VARCHAR' AND {self.folded} = {lit(expected.casefold())})"
        raise SqlUnsupported(f"comparing with {type(expected).__name__} value {expected!r}")


def _regex_text(value: _Value) -> str:
    """``str(actual)`` for a regex test: strings as they are, booleans as Python spells
    them, numbers and the rest as their JSON text."""
    return (
        f"(CASE WHEN {value.type} = 'VARCHAR' THEN {value.text}"
        f" WHEN {value.type} = 'BOOLEAN' THEN (CASE WHEN {value.text} = 'true'"
        f" THEN 'True' ELSE 'False' END) ELSE CAST({value.v} AS VARCHAR) END)"
    )


def _regex(pattern: str) -> str:
    """The pattern for RE2 (DuckDB), or :class:`SqlUnsupported` when it is Python-only."""
    if re.search(r"\(\?[=!<]|\(\?P=|\\[1-9]|\(\?\(", pattern):
        raise SqlUnsupported(
            f"regular expression {pattern!r} uses lookaround or backreferences (not in RE2)"
        )
    return pattern


def compare_sql(op: Op, v: str, expected: object, pattern: str | None = None) -> str:
    """SQL for ``compare(op, actual, expected)``, ``v`` the actual value as JSON; TRUE or
    FALSE, never NULL."""
    value = _Value(v)
    if op is Op.EXISTS:
        return value.present if bool(expected) else f"(NOT {value.present})"
    if op in (Op.CONTAINS, Op.NOT_CONTAINS):
        negate = op is Op.NOT_CONTAINS
        item = _Value("x")
        in_list = f"(len(list_filter(CAST({v} AS JSON[]), lambda x: {item.equal(expected)})) > 0)"
        if isinstance(expected, bool | int | float | str) or expected is None:
            text = str(expected).casefold()
        else:
            raise SqlUnsupported(f"contains with a {type(expected).__name__} value")
        in_text = f"contains({value.folded}, {lit(text)})"
        found = (
            f"(CASE WHEN {value.type} = 'ARRAY' THEN {in_list}"
            f" WHEN {value.type} = 'VARCHAR' THEN {in_text} ELSE FALSE END)"
        )
        outcome = f"(NOT {found})" if negate else found
        # a list is tested even when empty; anything else must be present
        return f"(COALESCE({value.type} = 'ARRAY' OR {value.present}, FALSE) AND {outcome})"
    body: str
    if op in (Op.EQUALS, Op.NOT_EQUALS):
        body = value.equal(expected)
        if op is Op.NOT_EQUALS:
            body = f"(NOT {body})"
    elif op in (Op.IN, Op.NOT_IN):
        options = expected if isinstance(expected, list | tuple) else (expected,)
        found = " OR ".join(value.equal(option) for option in options) or "FALSE"
        body = f"({found})" if op is Op.IN else f"(NOT ({found}))"
    elif op is Op.REGEX:
        if pattern is None:
            return "FALSE"
        body = f"regexp_matches({_regex_text(value)}, {lit(_regex(pattern))})"
    else:
        number = value.number
        if op is Op.BETWEEN:
            bounds: Sequence[float] = expected  # type: ignore[assignment]
            low, high = bounds[0], bounds[1]
            body = f"({number} BETWEEN {lit(float(low))} AND {lit(float(high))})"
        else:
            symbol = {Op.GT: ">", Op.GTE: ">=", Op.LT: "<", Op.LTE: "<="}[op]
            body = f"({number} {symbol} {lit(float(expected))})"  # type: ignore[arg-type]
    return f"COALESCE({value.present} AND {body}, FALSE)"  # a function call: no precedence


@dataclass(frozen=True)
class Scope:
    """What a condition may read, as SQL: the document its subject reads (traits or
    event properties) and the per-person facts of the scoring so far."""

    doc: str  # JSON expression: the profile, or the event's properties
    subject: Subject
    fit: str | None = None
    intent: str | None = None
    total: str | None = None
    earned: dict[str, str] | None = None  # rule id -> SQL boolean (earned > 0)
    seen: dict[str, str] | None = None  # event name -> SQL expression: latest epoch µs
    as_of_us: int = 0
    paths: dict[str, int] | None = None  # JSON paths read once per document (see lookup)


def condition_sql(condition: Condition, scope: Scope) -> str:
    """SQL for ``evaluate(condition, context)`` in the given scope; TRUE or FALSE."""
    if isinstance(condition, Compare):
        pattern = condition.pattern.pattern if condition.pattern is not None else None
        # a trait context knows no properties, an event's no traits: missing there
        actual = (
            lookup(scope.doc, condition.name, scope.paths)
            if condition.subject is scope.subject
            else "CAST(NULL AS JSON)"
        )
        return compare_sql(condition.op, actual, condition.value, pattern)
    if isinstance(condition, AllOf):
        return "(" + " AND ".join(condition_sql(i, scope) for i in condition.items) + ")"
    if isinstance(condition, AnyOf):
        return "(" + " OR ".join(condition_sql(i, scope) for i in condition.items) + ")"
    if isinstance(condition, Not):
        return f"(NOT {condition_sql(condition.item, scope)})"
    if isinstance(condition, RuleEarned):
        if scope.earned is None:
            return "FALSE"
        return scope.earned.get(condition.rule_id, "FALSE")
    if isinstance(condition, EventSeen):
        if scope.seen is None or condition.event not in scope.seen:
            return "FALSE"
        latest = scope.seen[condition.event]
        if condition.within_days is None:
            return f"({latest} IS NOT NULL)"
        try:
            since = scope.as_of_us - _micros(timedelta(days=condition.within_days))
        except (OverflowError, ValueError):
            return "FALSE"
        return f"COALESCE({latest} >= {since}, FALSE)"
    if isinstance(condition, ScoreAtLeast):
        if condition.field is ScoreField.LIKELIHOOD:
            return "FALSE"  # batch engines score rules only: no likelihood (as online, no model)
        field = {
            ScoreField.FIT: scope.fit,
            ScoreField.INTENT: scope.intent,
            ScoreField.TOTAL: scope.total,
        }[condition.field]
        if field is None:
            return lit(condition.minimum <= 0.0)
        return f"({field} >= {lit(float(condition.minimum))})"
    raise SqlUnsupported(f"condition {type(condition).__name__} has no SQL form")


def _micros(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def epoch_us(moment: datetime) -> int:
    return _micros(moment.astimezone(UTC) - _EPOCH)


def _untracked(definition: Definition) -> str:
    """``person_consent(profile).tracking is False`` (``trait_at``: an exact key with a
    non-null value wins, else nesting)."""
    name = definition.consent.tracking_trait
    exact = f"json_extract(j, {json_path([name])})"
    if "." in name:
        nested = f"json_extract(j, {json_path(name.split('.'))})"
        value = (
            f"(CASE WHEN {exact} IS NOT NULL AND json_type({exact}) <> 'NULL'"
            f" THEN {exact} ELSE {nested} END)"
        )
    else:
        value = exact
    is_false = f"json_type({value}) = 'BOOLEAN' AND json_extract_string({value}, '$') = 'false'"
    return f"COALESCE({is_false}, FALSE)"


def _list(items: Sequence[str], element_type: str) -> str:
    """A list of the non-NULL values among ``items`` (SQL expressions), typed."""
    if not items:
        return f"CAST([] AS {element_type}[])"
    return f"CAST(list_filter([{', '.join(items)}], lambda x: x IS NOT NULL) AS {element_type}[])"


def _cap_above(value: str, cap: float | None) -> str:
    if cap is None:
        return value
    return f"LEAST({value}, {lit(float(cap))})"


_RULE_POINT = "STRUCT(k VARCHAR, v DOUBLE)"


class SqlCompiler:
    """The SQL of one definition; :meth:`query` for a moment. Building it checks that
    every part of the definition has a SQL form (:class:`SqlUnsupported` otherwise)."""

    def __init__(self, definition: Definition) -> None:
        self.definition = definition
        parts: list[tuple[str, Condition | None, Scope]] = []
        traits, props = Scope("j", Subject.TRAIT), Scope("props", Subject.PROPERTY)
        parts += [(f"fit rule {r.id}", r.when, traits) for r in definition.fit_rules]
        parts += [(f"intent rule {r.id}", r.where, props) for r in definition.intent_rules]
        parts += [(f"exclusion {g.id}", g.when, traits) for g in definition.exclusions]
        parts += [(f"requirement {g.id}", g.when, traits) for g in definition.requirements]
        parts += [(f"qualify path {p.type}", p.when, traits) for p in definition.qualify.paths]
        for label, condition, scope in parts:
            if condition is None:
                continue
            try:
                condition_sql(condition, scope)
            except SqlUnsupported as error:
                raise SqlUnsupported(
                    f"{label}: {error.message}; the duckdb engine cannot score this "
                    "definition exactly (use the python engine)"
                ) from None
        self.query(datetime(2000, 1, 1, tzinfo=UTC), persons="persons", events="events")

    def query(self, as_of: datetime, *, persons: str, events: str) -> str:
        """The cards of every person in ``persons`` as of ``as_of``, ordered by person, in
        the columns of ``CARDS_SCHEMA`` (``rule_points`` as JSON text)."""
        d = self.definition
        q = d.qualify
        as_of_us = epoch_us(as_of)
        trait_paths: dict[str, int] = {}
        prop_paths: dict[str, int] = {}
        traits = Scope("j", Subject.TRAIT, paths=trait_paths)
        fit_rules = list(d.fit_rules)
        intent_rules = list(d.intent_rules)

        # 1. what the traits decide, once per person
        trait_columns = [
            f"{condition_sql(r.when, traits)} AS f{i}" for i, r in enumerate(fit_rules)
        ]
        trait_columns += [
            f"{condition_sql(g.when, traits)} AS x{i}" for i, g in enumerate(d.exclusions)
        ]
        trait_columns += [
            f"{condition_sql(g.when, traits)} AS r{i}" for i, g in enumerate(d.requirements)
        ]
        trait_columns.append(f"{_untracked(d)} AS untracked")
        # left to right from 0, as sum() adds the matching rules' points
        fit_raw = "0.0" + "".join(
            f" + (CASE WHEN f{i} THEN {lit(float(r.points))} ELSE 0.0 END)"
            for i, r in enumerate(fit_rules)
        )

        # 2. one pass over the events: whether each rule matches each event (its name,
        # then `where` and its window), as one boolean per rule
        path_events = sorted({n for p in q.paths for n in events_named(p.when)})
        names = sorted({r.event for r in intent_rules} | set(path_events))
        name_list = ", ".join(lit(n) for n in names) or "NULL"
        props = Scope("props", Subject.PROPERTY, paths=prop_paths)
        matches = []
        for rule in intent_rules:
            tests = []
            if rule.within_days is not None:
                start = as_of_us - rule.within_days * US_PER_DAY
                tests.append(f"us >= {lit(float(start))}")
            if rule.where is not None:
                tests.append(condition_sql(rule.where, props))
            named = f"name = {lit(rule.event)}"
            # a CASE evaluates the rest only on the events of that name (AND does not)
            matches.append(
                f"(CASE WHEN {named} THEN {' AND '.join(tests)} ELSE FALSE END)"
                if tests
                else f"({named})"
            )
        # the events whose properties a rule reads: their JSON is parsed, once
        parsed = sorted({r.event for r in intent_rules if r.where is not None})
        age = f"(GREATEST({as_of_us} - u, 0) / {float(US_PER_DAY)!r})"
        # per person and rule: the times of the hits the repeat policy keeps (`once`: the
        # latest; `once_per_day`: the latest of each UTC day), ascending, each earning its
        # decayed points, summed in that (canonical) order; the cap bounds the magnitude
        aggregates: list[str] = []  # over the events, by person
        ordered: list[str] = []  # over the aggregates: lists sorted, once each
        earned_sql: list[str] = []  # a rule's points before the cap; NULL: no hit
        for index, rule in enumerate(intent_rules):
            half_life = float(d.intent_half_life(rule))
            hit = f"{lit(float(rule.points))}"
            if half_life > 0:
                hit += f" * pow(0.5, {age} / {lit(half_life)})"
            column = f"m_{index}"
            if rule.repeat is Repeat.ONCE:
                aggregates.append(f"max(us) FILTER (WHERE {matches[index]}) AS {column}")
                ordered.append(column)
                once = hit.replace(" u,", f" {column},")
                earned_sql.append(f"(CASE WHEN {column} IS NOT NULL THEN {once} END)")
                continue
            aggregates.append(f"list(us) FILTER (WHERE {matches[index]}) AS {column}")
            ordered.append(f"list_sort({column}) AS {column}")
            kept = column
            if rule.repeat is Repeat.ONCE_PER_DAY:
                kept = (
                    f"list_filter({column}, lambda x, i: i = len({column})"
                    f" OR floor({column}[i + 1] / {US_PER_DAY}) <> floor(x / {US_PER_DAY}))"
                )
            earned_sql.append(f"list_sum(list_transform({kept}, lambda u: {hit}))")
        capped = []
        for index, rule in enumerate(intent_rules):
            value = f"w{index}"
            if rule.cap is not None:
                cap = lit(float(rule.cap))
                # LEAST and GREATEST skip NULLs: a rule without hits stays NULL
                bounded = f"GREATEST(LEAST({value}, {cap}), -{cap})"
                value = f"CASE WHEN {value} IS NOT NULL THEN {bounded} END"
            capped.append(f"{value} AS p{index}")

        # 3. what the qualification paths ask of the history
        intent_index = {r.id: i for i, r in enumerate(intent_rules)}
        asked = sorted(
            {
                c.rule_id
                for p in q.paths
                for c in _walk(p.when)
                if isinstance(c, RuleEarned) and c.rule_id in intent_index
            }
        )
        earned: dict[str, str] = {rid: f"e_{k}" for k, rid in enumerate(asked)}
        for i, r in enumerate(fit_rules):
            earned.setdefault(r.id, f"f{i}" if r.points > 0 else "FALSE")
        seen = {n: f"s_{k}" for k, n in enumerate(path_events)}
        path_scope = Scope(
            "j",
            Subject.TRAIT,
            fit="fit",
            intent="intent",
            total="total",
            earned=earned,
            seen=seen,
            as_of_us=as_of_us,
            paths=trait_paths,
        )
        tests = [condition_sql(p.when, path_scope) for p in q.paths]
        matched_type = "CAST(NULL AS VARCHAR)"
        bypass = "FALSE"
        if q.paths:
            pairs = list(zip(tests, q.paths, strict=True))
            matched_type = "CASE " + " ".join(f"WHEN {t} THEN {lit(p.type)}" for t, p in pairs)
            matched_type += " END"
            bypass = "CASE " + " ".join(
                f"WHEN {t} THEN {lit(p.bypass_threshold)}" for t, p in pairs
            )
            bypass += " ELSE FALSE END"
        excluded = _list(
            [f"CASE WHEN x{i} THEN {lit(g.id)} END" for i, g in enumerate(d.exclusions)],
            "VARCHAR",
        )
        missing = _list(
            [f"CASE WHEN NOT r{i} THEN {lit(g.id)} END" for i, g in enumerate(d.requirements)],
            "VARCHAR",
        )
        fit_points = _list(
            [
                f"CASE WHEN f{i} THEN {{'k': {lit(r.id)}, 'v': {lit(float(r.points))}}} END"
                for i, r in enumerate(fit_rules)
            ],
            _RULE_POINT,
        )
        seen_aggregates = [
            f"max(us) FILTER (WHERE name = {lit(n)}) AS s_{k}" for k, n in enumerate(path_events)
        ]
        seen_columns = "".join(f", s_{k}" for k in range(len(path_events)))
        by_person = ", ".join(["person_id", *aggregates, *seen_aggregates])
        sorted_lists = ", ".join(["person_id", *ordered]) + seen_columns
        earned_list = (
            ", ".join(["person_id", *(f"{e} AS w{i}" for i, e in enumerate(earned_sql))])
            + seen_columns
        )
        capped_list = ", ".join(["*", *capped])
        intent_raw = "0.0" + "".join(f" + COALESCE(p{i}, 0.0)" for i in range(len(intent_rules)))
        intent_points = _list(
            [
                f"CASE WHEN p{i} IS NOT NULL THEN {{'k': {lit(r.id)}, 'v': p{i}}} END"
                for i, r in enumerate(intent_rules)
            ],
            _RULE_POINT,
        )
        earned_columns = "".join(
            f", COALESCE(w{intent_index[rid]} > 0, FALSE) AS e_{k}" for k, rid in enumerate(asked)
        )
        fact_columns = "".join(f", COALESCE(ri.e_{k}, FALSE) AS e_{k}" for k in range(len(asked)))
        fact_columns += "".join(f", ri.s_{k}" for k in range(len(path_events)))
        parsed_list = ", ".join(lit(n) for n in parsed) or "NULL"
        cooldown_us = _micros(timedelta(days=q.recycle_cooldown_days))
        j_info, props_info = _extract_all("j", trait_paths), _extract_all("props", prop_paths)
        # the profile travels no further than the trait columns, unless a path reads it
        kept_info = ", j_info" if any("j_info" in test for test in tests) else ""
        return f"""
WITH
pt0 AS MATERIALIZED (
  SELECT *, {j_info} AS j_info
  FROM (SELECT person_id, stage, recycled_at, CAST(profile AS JSON) AS j FROM {persons})
),
pt AS MATERIALIZED (
  SELECT person_id, stage, recycled_at{kept_info}, {", ".join(trait_columns)} FROM pt0
),
ev AS (
  SELECT person_id, name, epoch_us("timestamp") AS us, properties
  FROM {events}
  WHERE name IN ({name_list}) AND epoch_us("timestamp") <= {as_of_us}
    AND person_id IN (SELECT person_id FROM pt WHERE NOT untracked)
),
evp AS MATERIALIZED (
  SELECT person_id, name, us, {props_info} AS props_info
  FROM (SELECT *, CASE WHEN name IN ({parsed_list}) THEN properties END AS props FROM ev)
),
r0 AS (SELECT {by_person} FROM evp GROUP BY person_id),
r1 AS (SELECT {sorted_lists} FROM r0),
r2 AS (SELECT {earned_list} FROM r1),
r3 AS (SELECT {capped_list} FROM r2),
ri AS (
  SELECT person_id{seen_columns},
    {intent_raw} AS intent_raw,
    {intent_points} AS intent_points{earned_columns}
  FROM r3
),
s1 AS (
  SELECT pt.*, ri.intent_points{fact_columns},
    {_cap_above(fit_raw, d.fit_cap)} AS fit,
    {_cap_above("COALESCE(ri.intent_raw, 0.0)", d.intent_cap)} AS intent
  FROM pt LEFT JOIN ri USING (person_id)
),
s2 AS (SELECT *, {_cap_above("fit + intent", q.total_cap)} AS total FROM s1),
s3 AS (
  SELECT *,
    {matched_type} AS matched_type,
    {bypass} AS bypass_path,
    {excluded} AS excluded_because,
    {missing} AS missing_requirements,
    fit >= {lit(float(q.min_fit))} AS fit_enough
  FROM s2
),
s4 AS (
  SELECT *,
    (total >= {lit(float(q.threshold))} AND fit_enough) AS meets_threshold,
    (len(excluded_because) = 0 AND len(missing_requirements) = 0) AS gated,
    (bypass_path AND fit_enough) AS bypass
  FROM s3
),
s5 AS (
  SELECT *,
    (gated AND (meets_threshold OR bypass)) AS qualifies,
    (gated AND ((total >= {lit(float(q.threshold - q.hysteresis))} AND fit_enough) OR bypass))
      AS retains,
    list_sort(list_concat({fit_points}, COALESCE(intent_points, CAST([] AS {_RULE_POINT}[]))))
      AS points_list
  FROM s4
)
SELECT
  person_id,
  fit,
  intent,
  total,
  meets_threshold,
  qualifies,
  retains,
  CASE WHEN qualifies THEN COALESCE(matched_type, {lit(q.default_type)}) END AS mql_type,
  excluded_because,
  missing_requirements,
  '{{' || array_to_string(
    list_transform(points_list, lambda p: to_json(p.k) || ': ' || CAST(round(p.v, 4) AS VARCHAR)),
    ', ') || '}}' AS rule_points,
  CASE
    WHEN stage = 'lead' AND qualifies THEN 'mql'
    WHEN stage = 'nurture' AND qualifies AND (recycled_at IS NULL
      OR {as_of_us} >= epoch_us(recycled_at) + {cooldown_us}) THEN 'mql'
    WHEN stage = 'mql' AND NOT retains THEN 'lead'
  END AS next_stage
FROM s5
ORDER BY person_id
"""


def _extract_all(doc: str, paths: dict[str, int]) -> str:
    """All registered paths of a document in one ``json_extract`` (one parse), each value
    with its JSON type and text, so that conditions do not parse it again: a list of
    ``{v, t, x}``, to be materialized (DuckDB would inline it into every use)."""
    if not paths:
        return f"CAST([] AS {_INFO_TYPE}[])"
    ordered = sorted(paths, key=paths.__getitem__)
    return (
        f"list_transform(json_extract({doc}, [{', '.join(ordered)}]),"
        " lambda v: {'v': v, 't': json_type(v), 'x': json_extract_string(v, '$')})"
    )


def _walk(condition: Condition) -> list[Condition]:
    if isinstance(condition, AllOf | AnyOf):
        return [condition, *(c for item in condition.items for c in _walk(item))]
    if isinstance(condition, Not):
        return [condition, *_walk(condition.item)]
    return [condition]

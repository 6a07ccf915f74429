"""Conditions as Spark Column expressions, with the online semantics of
:mod:`mqlengine.domain.conditions` (``lookup_path``, ``compare``, ``evaluate``).

A JSON document (a profile or an event's properties) is parsed once into a Spark VARIANT;
each name a condition reads is looked up there as :func:`lookup_path` does (an exact key
with dots wins over nesting) and classified by its JSON type, so comparisons follow
Python's rules: booleans equal only booleans (or the words true/false), numbers compare as
floats (numeric strings too, as ``float()`` reads them), strings compare case-folded, a
missing or empty value matches nothing but ``exists: false``.

Nothing here runs Python per row. What has no faithful Spark form is refused when the
definition is compiled (:class:`SparkCompileError`, naming the condition), or, where only
the data can tell (``regex`` against a list), fails the job with a message naming the trait
rather than giving a different answer.
"""

from __future__ import annotations

import math
import re
import sys
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

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
    Subject,
    describe,
)
from mqlengine.errors import DefinitionError


class SparkCompileError(DefinitionError):
    """A part of a definition that the Spark engine cannot express."""

    def __init__(self, where: str, what: str) -> None:
        message = f"{where}: {what} (no Spark form; score this definition with another engine)"
        super().__init__(message, diagnostics=[message])


# ----------------------------------------------------------------------------------------
# Character tables, taken from this Python so Spark folds and strips as it does


def _java_class(chars: list[str]) -> str:
    return "".join(f"\\x{{{ord(c):x}}}" for c in chars)


_SPACES = [chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()]
WHITESPACE_CLASS = "[" + _java_class(_SPACES) + "]"
_STRIP = f"^{WHITESPACE_CLASS}+|{WHITESPACE_CLASS}+$"

# casefold() of a string that is already lower case: most characters stay, a few map to
# one other character (ς → σ) or to several (ß → ss)
_ONE: dict[str, str] = {}
_MANY: dict[str, str] = {}
for _code in range(128, sys.maxunicode + 1):
    _char = chr(_code)
    if _char.lower() == _char and _char.casefold() != _char:
        (_ONE if len(_char.casefold()) == 1 else _MANY)[_char] = _char.casefold()

# Unicode decimal digits float() reads as ASCII ones
_DIGITS_FROM = "".join(
    chr(c)
    for c in range(128, sys.maxunicode + 1)
    if unicodedata.category(chr(c)) == "Nd" and unicodedata.decimal(chr(c), None) is not None
)
_DIGITS_TO = "".join(str(unicodedata.decimal(c)) for c in _DIGITS_FROM)
_DIGITS = r"[0-9](_?[0-9])*"
_FLOAT_TEXT = rf"^[+-]?(({_DIGITS})(\.({_DIGITS})?)?|\.{_DIGITS})([eE][+-]?{_DIGITS})?$"
_INF_TEXT = r"^(?i)[+-]?(inf|infinity)$"
_NAN_TEXT = r"^(?i)[+-]?nan$"
_ASCII = r"^[\x{0}-\x{7f}]*$"


def sql_text(value: str) -> str:
    """A Spark SQL string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def fold_sql(name: str) -> str:
    """:func:`fold` as SQL text over the column ``name`` (one call to build, not hundreds)."""
    lowered = f"lower({name})"
    full = f"translate({lowered}, {sql_text(''.join(_ONE))}, {sql_text(''.join(_ONE.values()))})"
    for source, target in _MANY.items():
        full = f"replace({full}, {sql_text(source)}, {sql_text(target)})"
    return f"CASE WHEN {name} RLIKE {sql_text(_ASCII)} THEN {lowered} ELSE {full} END"


def parse_float_sql(name: str) -> str:
    """:func:`parse_float` as SQL text over the column ``name``."""
    digits = f"translate({name}, {sql_text(_DIGITS_FROM)}, {sql_text(_DIGITS_TO)})"
    stripped = f"regexp_replace({digits}, {sql_text(_STRIP)}, '')"
    t = stripped  # repeated below; the generated code computes it once
    return (
        f"CASE WHEN {t} RLIKE {sql_text(_FLOAT_TEXT)} "
        f"THEN try_cast(replace({t}, '_', '') AS DOUBLE) "
        f"WHEN {t} RLIKE {sql_text(_INF_TEXT)} "
        f"THEN CASE WHEN startswith({t}, '-') THEN -double('inf') ELSE double('inf') END "
        f"WHEN {t} RLIKE {sql_text(_NAN_TEXT)} THEN double('NaN') END"
    )


def fold(text: Column) -> Column:
    """``str.casefold()``: lower case, then the few characters folding changes further."""
    lowered = F.lower(text)
    full = F.translate(lowered, "".join(_ONE), "".join(_ONE.values()))
    for source, target in _MANY.items():
        full = F.replace(full, F.lit(source), F.lit(target))
    return F.when(text.rlike(_ASCII), lowered).otherwise(full)


def strip(text: Column) -> Column:
    """``str.strip()`` (Python's whitespace, not only ASCII)."""
    return F.regexp_replace(text, _STRIP, "")


def parse_float(text: Column) -> Column:
    """``float(text.strip())``, or null where Python raises ValueError."""
    stripped = strip(F.translate(text, _DIGITS_FROM, _DIGITS_TO))
    sign = F.when(stripped.startswith("-"), F.lit(-1.0)).otherwise(F.lit(1.0))
    return (
        F.when(stripped.rlike(_FLOAT_TEXT), F.regexp_replace(stripped, "_", "").try_cast("double"))
        .when(stripped.rlike(_INF_TEXT), sign * F.lit(math.inf))
        .when(stripped.rlike(_NAN_TEXT), F.lit(math.nan))
    )


# ----------------------------------------------------------------------------------------
# JSON values


def _quoted(key: str, where: str) -> str:
    if "'" not in key and "\\" not in key:
        return f"['{key}']"
    if '"' not in key and "\\" not in key:
        return f'["{key}"]'
    raise SparkCompileError(where, f"the name {key!r} mixes quotes or holds a backslash")


def lookup(document: Column, name: str, where: str) -> Column:
    """:func:`~mqlengine.domain.conditions.lookup_path` on a VARIANT document: a VARIANT
    (a variant null for JSON null), or SQL null when the name is not there."""
    exact = F.try_variant_get(document, "$" + _quoted(name, where), "variant")
    if "." not in name:
        return exact
    nested = F.try_variant_get(
        document, "$" + "".join(_quoted(part, where) for part in name.split(".")), "variant"
    )
    return F.coalesce(exact, nested)


def trait_at(document: Column, name: str, where: str) -> Column:
    """:func:`~mqlengine.domain.consent.trait_at`: an exact key holding null falls through
    to the nested path."""
    exact = F.try_variant_get(document, "$" + _quoted(name, where), "variant")
    if "." not in name:
        return exact
    nested = F.try_variant_get(
        document, "$" + "".join(_quoted(part, where) for part in name.split(".")), "variant"
    )
    return F.when(exact.isNotNull() & ~F.is_variant_null(exact), exact).otherwise(nested)


def kind_of(value: Column) -> Column:
    """The Python type json.loads gives: missing, null, bool, int, float, str, list, dict."""
    schema = F.schema_of_variant(value)
    return (
        F.when(value.isNull(), F.lit("missing"))
        .when(schema == "VOID", F.lit("null"))
        .when(schema == "BOOLEAN", F.lit("bool"))
        .when(schema == "STRING", F.lit("str"))
        .when(schema.startswith("ARRAY"), F.lit("list"))
        .when(schema.startswith("OBJECT"), F.lit("dict"))
        .when(schema.rlike(r"^(BIGINT|INT|SMALLINT|TINYINT|DECIMAL\([0-9]+,0\))$"), F.lit("int"))
        .otherwise(F.lit("float"))
    )


@dataclass(frozen=True)
class Value:
    """One looked-up JSON value: the VARIANT, its kind (see :func:`kind_of`), and what the
    comparisons read of it: the text of a string (and its case fold), a boolean, the number
    ``_number`` reads, and whether it is present (``_present``)."""

    variant: Column
    kind: Column
    text: Column
    folded: Column
    boolean: Column
    number: Column
    present: Column

    @staticmethod
    def of(variant: Column) -> Value:
        """The parts as expressions over ``variant`` (used inside lambdas)."""
        kind = kind_of(variant)
        text = F.when(kind == "str", F.variant_get(variant, "$", "string"))
        return Value(
            variant,
            kind,
            text,
            fold(text),
            F.when(kind == "bool", F.variant_get(variant, "$", "boolean")),
            _number(variant, kind, text),
            _present(variant, kind, text),
        )

    def items(self) -> Column:
        return F.variant_get(self.variant, "$", "array<variant>")


def _number(variant: Column, kind: Column, text: Column) -> Column:
    """``_number``: ints and floats as floats, numeric strings parsed, else null."""
    return F.when(kind.isin("int", "float"), F.variant_get(variant, "$", "double")).when(
        kind == "str", parse_float(text)
    )


def _present(variant: Column, kind: Column, text: Column) -> Column:
    """``_present``: not missing, not null, not "" and not []."""
    empty_list = (kind == "list") & (F.size(F.variant_get(variant, "$", "array<variant>")) == 0)
    return ~kind.isin("missing", "null") & ~((kind == "str") & (text == "")) & ~empty_list


def materialize(
    frame: DataFrame, lookups: list[tuple[str, Column]]
) -> tuple[DataFrame, list[Value]]:
    """Adds each looked-up value's parts as columns ``PREFIX_v``, ``_k``, ``_s``, … (in a
    few projections, so every part is computed once per row); returns the frame and the
    :class:`Value` of each."""
    frame = frame.select("*", *[variant.alias(f"{p}_v") for p, variant in lookups])
    frame = frame.select("*", *[kind_of(F.col(f"{p}_v")).alias(f"{p}_k") for p, _ in lookups])
    parts: list[Column] = []
    for p, _ in lookups:
        variant, kind = F.col(f"{p}_v"), F.col(f"{p}_k")
        parts.append(F.when(kind == "str", F.variant_get(variant, "$", "string")).alias(f"{p}_s"))
        parts.append(F.when(kind == "bool", F.variant_get(variant, "$", "boolean")).alias(f"{p}_b"))
    frame = frame.select("*", *parts)
    parts = []
    for p, _ in lookups:
        variant, kind, text = F.col(f"{p}_v"), F.col(f"{p}_k"), F.col(f"{p}_s")
        parts.append(F.expr(fold_sql(f"{p}_s")).alias(f"{p}_f"))
        parts.append(
            F.when(kind.isin("int", "float"), F.variant_get(variant, "$", "double"))
            .when(kind == "str", F.expr(parse_float_sql(f"{p}_s")))
            .alias(f"{p}_n")
        )
        parts.append(_present(variant, kind, text).alias(f"{p}_p"))
    frame = frame.select("*", *parts)
    values = [
        Value(*(F.col(f"{p}_{part}") for part in ("v", "k", "s", "f", "b", "n", "p")))
        for p, _ in lookups
    ]
    return frame, values


def _false_if_null(column: Column) -> Column:
    return F.coalesce(column, F.lit(False))


def _scalar(expected: object, where: str, op: Op) -> None:
    if isinstance(expected, list | tuple | dict):
        raise SparkCompileError(where, f"'{op.value}' with a list or object value")


def equal(actual: Value, expected: object) -> Column:
    """``_equal(actual, expected)`` for a scalar ``expected``."""
    if isinstance(expected, bool):
        word = str(expected).lower()
        return _false_if_null(
            ((actual.kind == "bool") & (actual.boolean == F.lit(expected)))
            | ((actual.kind == "str") & (F.lower(strip(actual.text)) == F.lit(word)))
        )
    if isinstance(expected, int | float):
        target = float(expected)
        if math.isnan(target):
            return F.lit(False)
        number = actual.number
        return _false_if_null((actual.kind != "bool") & ~F.isnan(number) & (number == target))
    if isinstance(expected, str):
        return _false_if_null((actual.kind == "str") & (actual.folded == expected.casefold()))
    return F.lit(False)  # None (and anything else) equals nothing present


_RISKY_REGEX = (
    (re.compile(r"\(\?P"), "named groups (?P…)"),
    (re.compile(r"\(\?[aiLmsux-]+[):]"), "inline flags"),
    (re.compile(r"\(\?\("), "conditional groups"),
    (re.compile(r"\(\?#"), "comments"),
    (re.compile(r"\\[ZANgU]"), r"the escapes \Z, \A, \N, \g, \U"),
    (re.compile(r"\[[^\]]*(&&|\[)"), "'&&' or '[' inside a character class"),
)


def java_pattern(pattern: str, where: str) -> str:
    """A Python regular expression as a Java one with the same matches: Unicode classes
    (``(?U)``) and only ``\\n`` as line end (``(?d)``); constructs the two read differently
    are refused."""
    for risky, what in _RISKY_REGEX:
        if risky.search(pattern):
            raise SparkCompileError(where, f"regex {pattern!r} uses {what}")
    return "(?dU)" + pattern


def python_str(actual: Value, where: str) -> Column:
    """``str(actual)`` for the kinds Spark can spell as Python does; others fail the job."""
    number = F.variant_get(actual.variant, "$", "double")
    plain = (F.abs(number) >= 1e-3) & (F.abs(number) < 1e7) | (number == 0.0)
    return (
        F.when(actual.kind == "str", actual.text)
        .when(actual.kind == "int", F.variant_get(actual.variant, "$", "string"))
        .when(actual.kind == "bool", F.when(actual.boolean, "True").otherwise("False"))
        .when((actual.kind == "float") & plain, number.cast("string"))
        .otherwise(
            F.raise_error(
                F.concat(
                    F.lit(f"{where}: regex against a value Spark cannot spell as Python does: "),
                    F.to_json(actual.variant),
                )
            ).cast("string")
        )
    )


def compare(op: Op, actual: Value, expected: object, pattern: str | None, where: str) -> Column:
    """:func:`~mqlengine.domain.conditions.compare` with constant ``expected``."""
    if op is Op.EXISTS:
        return actual.present == F.lit(bool(expected))
    present = actual.present
    if op in (Op.CONTAINS, Op.NOT_CONTAINS):
        _scalar(expected, where, op)
        in_list = F.exists(actual.items(), lambda item: equal(Value.of(item), expected))
        in_text = F.instr(actual.folded, str(expected).casefold()) > 0
        found = F.when(actual.kind == "list", in_list).when(actual.kind == "str", in_text)
        found = _false_if_null(found)
        verdict = found if op is Op.CONTAINS else ~found
        return F.when(actual.kind == "list", verdict).otherwise(present & verdict)
    if op in (Op.EQUALS, Op.NOT_EQUALS):
        if isinstance(expected, list | tuple):  # folded: equals one of the strings
            if not expected or not all(isinstance(o, str) for o in expected):
                raise SparkCompileError(where, f"'{op.value}' with a list value")
            hit = _false_if_null(
                (actual.kind == "str") & actual.folded.isin([o.casefold() for o in expected])
            )
            verdict = present & (hit if op is Op.EQUALS else ~hit)
            return F.when(actual.kind != "list", verdict).otherwise(
                F.raise_error(F.lit(f"{where}: a list value compared with a list")).cast("boolean")
            )
        _scalar(expected, where, op)
        hit = equal(actual, expected)
        return present & (hit if op is Op.EQUALS else ~hit)
    if op in (Op.IN, Op.NOT_IN):
        options = expected if isinstance(expected, list | tuple) else (expected,)
        for option in options:
            _scalar(option, where, op)
        any_equal: Column = F.lit(False)
        for option in options:
            any_equal = any_equal | equal(actual, option)
        return present & (any_equal if op is Op.IN else ~any_equal)
    if op is Op.REGEX:
        assert pattern is not None
        java = java_pattern(pattern, where)
        return F.when(present, _false_if_null(python_str(actual, where).rlike(java))).otherwise(
            F.lit(False)
        )
    number = actual.number
    usable = present & number.isNotNull() & ~F.isnan(number)
    if op is Op.BETWEEN:
        low, high = (float(b) for b in expected)  # type: ignore[attr-defined]
        test = (number >= low) & (number <= high)
    else:
        limit = float(expected)  # type: ignore[arg-type]
        test = {Op.GT: number > limit, Op.GTE: number >= limit, Op.LT: number < limit}.get(
            op, number <= limit
        )
    return _false_if_null(usable & test)


# ----------------------------------------------------------------------------------------
# Condition trees


@dataclass
class Scope:
    """What a condition may read, as Columns: the looked-up traits or properties
    (:func:`materialize`), and the facts a qualification path asks about."""

    where: str
    rule_earned: Callable[[str], Column] | None = None
    event_seen: Callable[[EventSeen], Column] | None = None
    score: Callable[[ScoreAtLeast], Column] | None = None
    values: dict[tuple[Subject, str], Value] = field(default_factory=dict)

    def value(self, subject: Subject, name: str) -> Value:
        found = self.values.get((subject, name))
        if found is None:
            raise SparkCompileError(self.where, f"{subject.value} conditions are not read here")
        return found


def condition(item: Condition, scope: Scope) -> Column:
    """A condition tree as one boolean Column (never null)."""
    if isinstance(item, Compare):
        actual = scope.value(item.subject, item.name)
        pattern = item.pattern.pattern if item.pattern is not None else None
        where = f"{scope.where}: {describe(item)}"
        return compare(item.op, actual, item.value, pattern, where)
    if isinstance(item, AllOf):
        result = condition(item.items[0], scope)
        for part in item.items[1:]:
            result = result & condition(part, scope)
        return result
    if isinstance(item, AnyOf):
        result = condition(item.items[0], scope)
        for part in item.items[1:]:
            result = result | condition(part, scope)
        return result
    if isinstance(item, Not):
        return ~condition(item.item, scope)
    if isinstance(item, RuleEarned) and scope.rule_earned is not None:
        return scope.rule_earned(item.rule_id)
    if isinstance(item, EventSeen) and scope.event_seen is not None:
        return scope.event_seen(item)
    if isinstance(item, ScoreAtLeast) and scope.score is not None:
        return scope.score(item)
    raise SparkCompileError(scope.where, f"'{describe(item)}' is not read here")

"""The ranges every value the engine stores or computes with must fall in.

Input outside them is refused where it is read (message parser, API models, report
filters), so nothing further in can overflow a database column, the date arithmetic
of windows and deadlines, or the JSON encoder:

* **moments** between 1900-01-01 and 9000-01-01 (UTC): far enough from Python's year 1
  and year 9999 that converting an offset to UTC, or adding a window of years, stays in
  range;
* **integers** for ``INTEGER`` columns up to 2**31 - 1, ids (``BIGINT``) up to 2**63 - 1;
* **JSON nesting** of a message up to :data:`MAX_JSON_DEPTH` levels (where the encoder
  the store uses stops), and no NUL character in any text (PostgreSQL refuses it).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

MIN_MOMENT = datetime(1900, 1, 1, tzinfo=UTC)
MAX_MOMENT = datetime(9000, 1, 1, tzinfo=UTC)
INT_MAX = 2**31 - 1  # INTEGER on PostgreSQL
BIGINT_MAX = 2**63 - 1  # BIGINT on PostgreSQL, INTEGER on SQLite
MAX_JSON_DEPTH = 254  # the store's JSON encoder (orjson) goes no deeper


class OutOfBounds(ValueError):
    """A value outside the range the engine can store; the message says which range."""


def utc_moment(value: datetime) -> datetime:
    """``value`` in UTC (naive means UTC), or :class:`OutOfBounds` when it is outside
    :data:`MIN_MOMENT` … :data:`MAX_MOMENT` (or cannot be expressed in UTC at all)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        moment = value.astimezone(UTC)
    except OverflowError:
        moment = None
    if moment is None or not MIN_MOMENT <= moment <= MAX_MOMENT:
        raise OutOfBounds(
            f"{value.isoformat()} is outside the supported range "
            f"{MIN_MOMENT.date().isoformat()} to {MAX_MOMENT.date().isoformat()}"
        )
    return moment


def json_problem(value: Any, limit: int = MAX_JSON_DEPTH) -> str | None:
    """What makes a JSON value (dicts, lists, scalars) unstorable, or None: objects and
    arrays nested more than ``limit`` levels, or a NUL character in a string or key (which
    PostgreSQL cannot store). Flat objects cost one pass over their items."""
    kind = value.__class__
    if kind is str:
        return NUL_PROBLEM if "\x00" in value else None
    if kind is not dict and kind is not list:
        return None
    if limit <= 0:
        return f"nested more than {MAX_JSON_DEPTH} levels deep"
    if kind is dict:
        for key, child in value.items():
            if key.__class__ is str and "\x00" in key:
                return NUL_PROBLEM
            child_kind = child.__class__
            if child_kind is dict or child_kind is list or child_kind is str:
                found = json_problem(child, limit - 1)
                if found is not None:
                    return found
        return None
    for child in value:
        child_kind = child.__class__
        if child_kind is dict or child_kind is list or child_kind is str:
            found = json_problem(child, limit - 1)
            if found is not None:
                return found
    return None


NUL_PROBLEM = "contains a NUL character (\\u0000), which the database cannot store"

"""The ranges every value the engine stores or computes with must fall in.

Input outside them is refused where it is read (message parser, API models, report
filters), so nothing further in can overflow a database column, the date arithmetic
of windows and deadlines, or the JSON encoder:

* **moments** between 1900-01-01 and 9000-01-01 (UTC): far enough from Python's year 1
  and year 9999 that converting an offset to UTC, or adding a window of years, stays in
  range;
* **integers** for ``INTEGER`` columns up to 2**31 - 1, ids (``BIGINT``) up to 2**63 - 1;
* **JSON nesting** of message objects up to :data:`MAX_JSON_DEPTH` levels (the encoder
  the store uses stops at 254).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

MIN_MOMENT = datetime(1900, 1, 1, tzinfo=UTC)
MAX_MOMENT = datetime(9000, 1, 1, tzinfo=UTC)
INT_MAX = 2**31 - 1  # INTEGER on PostgreSQL
BIGINT_MAX = 2**63 - 1  # BIGINT on PostgreSQL, INTEGER on SQLite
MAX_JSON_DEPTH = 64


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


def too_deep(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether a JSON value (dicts, lists, scalars) nests more than ``limit`` levels.

    An object or array is one level; scalars add none. Flat objects cost one pass over
    their values."""
    if limit <= 0:
        return value.__class__ is dict or value.__class__ is list
    if value.__class__ is dict:
        children: Any = value.values()
    elif value.__class__ is list:
        children = value
    else:
        return False
    for child in children:
        kind = child.__class__
        if (kind is dict or kind is list) and too_deep(child, limit - 1):
            return True
    return False

"""What a validation problem says, in the engine's words.

The definition file, the API's request bodies and the CLI's options are checked by
pydantic; its messages ("Input should be a valid number, unable to parse string as a
number", "String should match pattern '^\\d+…$'") are written for programmers. This module
turns one pydantic error (the mapping ``ValidationError.errors()`` yields: ``type``,
``msg``, ``input``, ``ctx``) into what a user should do about it. It reads only the
mapping, so it needs no pydantic import.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Patterns the engine's schemas use, and what to write instead.
PATTERN_HINTS: dict[str, str] = {
    r"^\d+(\.\d+)?\s*(s|m|h|d|w)$": "use a duration such as 15m, 2h, 1d or 1w (s, m, h, d, w)",
    r"^[a-z][a-z0-9_]*$": (
        "use lower-case letters, digits and _, starting with a letter (e.g. hand_raiser)"
    ),
    r"^[A-Z]{2}$": "use a two-letter country code in capitals (US, DE, FR)",
}

_MAX_SHOWN = 60


def shown(value: Any) -> str:
    """A value quoted for a message, cut when long."""
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 1] + "…"


def _got(error: Mapping[str, Any]) -> str:
    return f", got {shown(error['input'])}" if "input" in error else ""


def explain_invalid(error: Mapping[str, Any]) -> str:
    """One validation problem as a sentence (without where it is)."""
    kind = str(error.get("type", ""))
    ctx: Mapping[str, Any] = error.get("ctx") or {}
    got = _got(error)
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        hint = PATTERN_HINTS.get(pattern, "the text has the wrong form")
        return f"{hint}{got}"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"expected a whole number{got}"
    if kind in ("float_parsing", "float_type", "decimal_parsing", "decimal_type"):
        return f"expected a number{got}"
    if kind == "finite_number":
        return f"expected a finite number{got}"
    if kind in ("bool_parsing", "bool_type"):
        return f"expected true or false{got}"
    if kind in ("string_type", "string_unicode"):
        return f"expected text{got}"
    if kind in ("list_type", "tuple_type", "set_type"):
        return f"expected a list{got}"
    if kind in ("dict_type", "model_type", "model_attributes_type", "mapping_type"):
        return f"expected a mapping of key: value{got}"
    if kind in ("datetime_parsing", "datetime_type", "datetime_from_date_parsing"):
        return f"expected a date and time such as 2026-11-20T12:00:00Z{got}"
    if kind in ("date_parsing", "date_type", "date_from_datetime_parsing"):
        return f"expected a date such as 2026-11-20{got}"
    if kind in ("timezone_aware", "timezone_naive"):
        return f"give the time with its offset, e.g. 2026-11-20T12:00:00Z{got}"
    bounds = {
        "greater_than": ("greater than", "gt"),
        "greater_than_equal": ("at least", "ge"),
        "less_than": ("less than", "lt"),
        "less_than_equal": ("at most", "le"),
    }
    if kind in bounds:
        words, key = bounds[kind]
        return f"must be {words} {ctx.get(key)}{got}"
    if kind == "string_too_long":
        return f"at most {ctx.get('max_length')} characters{got}"
    if kind == "string_too_short":
        return (
            "must not be empty"
            if ctx.get("min_length") == 1
            else (f"at least {ctx.get('min_length')} characters{got}")
        )
    if kind == "too_long":
        return f"at most {ctx.get('max_length')} items"
    if kind == "too_short":
        return f"at least {ctx.get('min_length')} item(s)"
    if kind in ("literal_error", "enum"):
        return f"use one of {ctx.get('expected')}{got}"
    if kind == "missing":
        return "required"
    if kind == "extra_forbidden":
        return "not a known field"
    if kind in ("json_invalid", "json_type"):
        return f"not valid JSON ({ctx.get('error', 'could not be read')})"
    message = str(error.get("msg", "invalid value"))
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message

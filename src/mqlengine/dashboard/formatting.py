"""How the dashboard and the offline report print numbers: "—" for what is not known."""

from __future__ import annotations

from typing import Any

import orjson


def fmt_number(value: Any, digits: int = 0) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and digits:
        return f"{value:,.{digits}f}"
    return f"{round(value):,}" if isinstance(value, float) else f"{value:,}"


def fmt_percent(value: Any) -> str:
    return "—" if value is None else f"{value * 100:.1f} %"


def fmt_money(value: Any) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"


def fmt_hours(value: Any) -> str:
    if value is None:
        return "—"
    if value < 1:
        return f"{value * 60:.0f} min"
    if value < 48:
        return f"{value:.1f} h"
    return f"{value / 24:.1f} d"


def to_json(value: Any) -> str:
    """JSON for a <script type="application/json"> block (no '</' can close the tag)."""
    return orjson.dumps(value, default=str).decode().replace("</", "<\\/")


def footnotes(rows: Any, fields: str = "") -> list[dict[str, str]]:
    """The reasons behind the "—" of a table: one entry per figure and reason, listing the
    rows it applies to (``fields``: space-separated names shown by the table; all when
    empty)."""
    if isinstance(rows, dict):
        rows = [rows]
    wanted = set(fields.split())
    grouped: dict[tuple[str, str], list[str]] = {}
    for row in rows or []:
        for field, reason in (row.get("notes") or {}).items():
            if (not wanted or field in wanted) and row.get(field) is None:
                grouped.setdefault((field, reason), []).append(str(row.get("key")))
    return [
        {
            "field": field.replace("_", " "),
            "rows": "" if keys == ["total"] else ", ".join(keys[:10]),
            "reason": reason,
        }
        for (field, reason), keys in grouped.items()
    ]


def why(row: Any, field: str) -> str:
    """The reason a figure of ``row`` is "—" ('' when it is known)."""
    if not isinstance(row, dict) or row.get(field) is not None:
        return ""
    return str((row.get("notes") or {}).get(field) or "")

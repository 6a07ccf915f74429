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

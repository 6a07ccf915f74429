"""Chart specs (plain data) from report results, drawn by static/dashboard.js with Chart.js.

Kept in Python so the dashboard and the offline HTML report draw the same charts.
"""

from __future__ import annotations

from typing import Any


def volume_chart(volume: dict[str, Any], *, top: int = 8) -> dict[str, Any]:
    """MQLs per week, stacked by channel (the smaller channels folded into 'other')."""
    series = volume["series"]
    shown = series[:top]
    rest = series[top:]
    out = [{"label": s["key"], "values": s["values"]} for s in shown]
    if rest:
        folded = [sum(values) for values in zip(*(s["values"] for s in rest), strict=True)]
        out.append({"label": "other", "values": folded, "color": "#bab0ac"})
    return {"type": "bar", "stacked": True, "labels": volume["buckets"], "series": out}


def funnel_chart(steps: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "type": "bar",
        "horizontal": True,
        "labels": [s["label"] for s in steps],
        "series": [{"label": "count", "values": [s["count"] for s in steps]}],
    }


def cohort_chart(rows: list[dict[str, Any]]) -> dict[str, Any]:
    rows = [r for r in rows if r["mqls"]]
    labels = [str(r["key"]) for r in rows]
    return {
        "type": "bar",
        "labels": labels,
        "y2": True,
        "series": [
            {"label": "MQLs", "values": [r["mqls"] for r in rows]},
            {
                "label": "SAL rate",
                "type": "line",
                "axis": "y2",
                "values": [r["sal_rate"] for r in rows],
            },
            {
                "label": "MQL→SQL",
                "type": "line",
                "axis": "y2",
                "values": [r["mql_to_sql"] for r in rows],
            },
            {
                "label": "MQL→customer",
                "type": "line",
                "axis": "y2",
                "values": [r["mql_to_customer"] for r in rows],
            },
        ],
    }


def channel_chart(rows: list[dict[str, Any]]) -> dict[str, Any]:
    rows = [r for r in rows if r["mqls"] or r.get("spend")]
    return {
        "type": "bar",
        "labels": [str(r["key"]) for r in rows],
        "series": [
            {"label": "MQLs", "values": [r["mqls"] for r in rows]},
            {"label": "SQLs", "values": [r["sql"] for r in rows]},
        ],
    }


def cost_chart(rows: list[dict[str, Any]]) -> dict[str, Any]:
    rows = [r for r in rows if r.get("cost_per_mql") is not None and r["mqls"]]
    rows.sort(key=lambda r: -(r["cost_per_mql"] or 0))
    return {
        "type": "bar",
        "horizontal": True,
        "labels": [str(r["key"]) for r in rows],
        "series": [
            {"label": "cost per MQL", "values": [round(r["cost_per_mql"], 2) for r in rows]}
        ],
    }


def sla_chart(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "type": "bar",
        "stacked": True,
        "labels": [str(r["key"]) for r in rows],
        "series": [
            {"label": "met", "values": [r["sla_met"] for r in rows], "color": "#59a14f"},
            {"label": "breached", "values": [r["breaches"] for r in rows], "color": "#e15759"},
            {"label": "pending", "values": [r["pending"] for r in rows], "color": "#edc948"},
        ],
    }


def reasons_chart(reasons: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "type": "bar",
        "horizontal": True,
        "labels": [f"{r['action']}: {r['reason']}" for r in reasons],
        "series": [{"label": "count", "values": [r["count"] for r in reasons]}],
    }

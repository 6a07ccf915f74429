"""Small charts drawn on the server as inline SVG (no script needed): the person page's
score timeline. Every mark carries a ``<title>`` (the browser's tooltip, read by screen
readers) saying what it is and what moved it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from markupsafe import Markup, escape

WIDTH, HEIGHT = 960, 240
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 14, 28


def _x(moment: datetime, start: datetime, span: float) -> float:
    return LEFT + (WIDTH - LEFT - RIGHT) * ((moment - start).total_seconds() / span)


def score_timeline_svg(timeline: dict[str, Any], *, threshold: float | None = None) -> Markup:
    """The total score over time as a step line, a dot per stored score, and a dashed
    marker per stage change (manual and sales changes included)."""
    points = timeline["points"]
    stages = timeline["stages"]
    if not points and not stages:
        return Markup('<p class="muted" data-testid="no-timeline">no stored scores yet</p>')
    moments = [datetime.fromisoformat(p["as_of"]) for p in points] + [
        datetime.fromisoformat(s["at"]) for s in stages
    ]
    start, end = min(moments), max(moments)
    span = max((end - start).total_seconds(), 3600.0)
    totals: list[float] = [float(p["total"]) for p in points] + (
        [threshold] if threshold is not None else []
    )
    top = max([*totals, 10.0]) * 1.1
    bottom = min([*totals, 0.0])

    def y(value: float) -> float:
        return TOP + (HEIGHT - TOP - BOTTOM) * (1 - (value - bottom) / ((top - bottom) or 1))

    parts = [
        f'<svg class="timeline" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        'aria-label="score over time" data-testid="score-timeline">',
        f'<line x1="{LEFT}" y1="{y(bottom):.1f}" x2="{WIDTH - RIGHT}" y2="{y(bottom):.1f}" '
        'class="axis"/>',
    ]
    for tick in (bottom, (bottom + top) / 2, top / 1.1):
        parts.append(
            f'<text x="{LEFT - 6}" y="{y(tick) + 4:.1f}" class="tick" text-anchor="end">'
            f"{tick:.0f}</text>"
        )
    if threshold is not None:
        parts.append(
            f'<line x1="{LEFT}" y1="{y(threshold):.1f}" x2="{WIDTH - RIGHT}" '
            f'y2="{y(threshold):.1f}" class="threshold"><title>threshold {threshold:g}</title>'
            "</line>"
        )
    for label, moment in (("start", start), ("end", end)):
        anchor = "start" if label == "start" else "end"
        parts.append(
            f'<text x="{_x(moment, start, span):.1f}" y="{HEIGHT - 8}" class="tick" '
            f'text-anchor="{anchor}">{escape(moment.isoformat()[:16].replace("T", " "))}</text>'
        )
    for s in stages:
        x = _x(datetime.fromisoformat(s["at"]), start, span)
        manual = s["action"] in ("manual", "manual_score")
        title = (
            f"{s['at'][:16]} {s['from_stage'] or '—'} → {s['to_stage']} by {s['actor']}"
            f" ({s['action'] or 'score'}): {s['reason']}"
        )
        parts.append(
            f'<g class="stage-mark{" manual" if manual else ""}" data-to="{escape(s["to_stage"])}"'
            f' data-action="{escape(s["action"] or "")}">'
            f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{HEIGHT - BOTTOM}"/>'
            f'<text x="{x + 3:.1f}" y="{TOP + 10}">{escape(s["to_stage"])}</text>'
            f"<title>{escape(title)}</title></g>"
        )
    if points:
        path: list[str] = []
        for i, p in enumerate(points):
            x, yy = _x(datetime.fromisoformat(p["as_of"]), start, span), y(p["total"])
            if i:
                path.append(f"H{x:.1f}V{yy:.1f}")
            else:
                path.append(f"M{x:.1f} {yy:.1f}")
        parts.append(f'<path class="score-line" d="{"".join(path)}"/>')
        for p in points:
            moved = ", ".join(f"{m['rule']} {m['delta']:+g}" for m in p["moved_by"]) or "—"
            title = (
                f"{p['as_of'][:16]}: total {p['total']:g} (fit {p['fit']:g}, intent "
                f"{p['intent']:g}); rules: {moved}; events: {', '.join(p['events']) or '—'}"
            )
            parts.append(
                f'<circle class="score-point" cx="'
                f'{_x(datetime.fromisoformat(p["as_of"]), start, span):.1f}" '
                f'cy="{y(p["total"]):.1f}" r="3.5" data-total="{p["total"]}">'
                f"<title>{escape(title)}</title></circle>"
            )
    parts.append("</svg>")
    return Markup("".join(parts))

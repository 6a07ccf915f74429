"""`mql backtest --format html`: the backtest as one self-contained page with inline SVG.

No script and no network: the weekly MQL volume of both definitions is an SVG bar chart,
the figures are tables, and a figure the data cannot support is "—" with its reason.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

STYLE = (Path(__file__).parent / "static" / "dashboard.css").read_text(encoding="utf-8")
BASE, CAND = "#8a94a8", "#2f5bea"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _num(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def weekly_svg(weeks: list[dict[str, Any]], width: int = 900, height: int = 240) -> str:
    """Grouped bars: baseline and candidate MQLs per week."""
    if not weeks:
        return "<p class='muted'>no week in the window</p>"
    top = max(1, *(max(w["baseline_mqls"], w["candidate_mqls"]) for w in weeks))
    pad_left, pad_bottom, pad_top = 36, 36, 12
    plot_h = height - pad_bottom - pad_top
    slot = (width - pad_left) / len(weeks)
    bar = max(2.0, slot * 0.36)
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {width} {height}' "
        f"width='100%' role='img' aria-label='MQLs per week'>",
        f"<line x1='{pad_left}' y1='{pad_top + plot_h}' x2='{width}' y2='{pad_top + plot_h}' "
        "stroke='#e2e6ee'/>",
        f"<text x='4' y='{pad_top + 10}' font-size='11' fill='#5d6677'>{top}</text>",
        f"<text x='4' y='{pad_top + plot_h}' font-size='11' fill='#5d6677'>0</text>",
    ]
    for i, week in enumerate(weeks):
        x = pad_left + i * slot + slot * 0.12
        for j, (key, color) in enumerate((("baseline_mqls", BASE), ("candidate_mqls", CAND))):
            value = week[key]
            h = plot_h * value / top
            parts.append(
                f"<rect x='{x + j * bar:.1f}' y='{pad_top + plot_h - h:.1f}' width='{bar:.1f}' "
                f"height='{h:.1f}' fill='{color}'><title>{escape(week['week'])}: "
                f"{value} ({'baseline' if j == 0 else 'candidate'})</title></rect>"
            )
        parts.append(
            f"<text x='{x:.1f}' y='{height - 14}' font-size='10' fill='#5d6677'>"
            f"{escape(week['week'][5:])}</text>"
        )
    parts.append(
        f"<rect x='{width - 200}' y='2' width='10' height='10' fill='{BASE}'/>"
        f"<text x='{width - 186}' y='11' font-size='11'>baseline</text>"
        f"<rect x='{width - 110}' y='2' width='10' height='10' fill='{CAND}'/>"
        f"<text x='{width - 96}' y='11' font-size='11'>candidate</text></svg>"
    )
    return "".join(parts)


def _figures(report: dict[str, Any]) -> str:
    a, b = report["baseline"], report["candidate"]
    rows = [
        ("version", escape(str(a["version"])), escape(str(b["version"]))),
        ("threshold", f"{a['threshold']:g}", f"{b['threshold']:g}"),
        ("MQLs (entries)", _num(a["mqls"]), _num(b["mqls"])),
        ("per week", _num(a["per_week"], 1), _num(b["per_week"], 1)),
        ("left MQL", _num(a["left_mql"]), _num(b["left_mql"])),
        ("precision (reached sql)", _pct(a["precision"]), _pct(b["precision"])),
        ("recall (wins MQL first)", _pct(a["recall"]), _pct(b["recall"])),
        (
            "median days MQL → sql",
            _num(a["median_days_to_outcome"], 1),
            _num(b["median_days_to_outcome"], 1),
        ),
        ("pipeline (recorded)", _num(a["pipeline"]), _num(b["pipeline"])),
    ]
    body = "".join(
        f"<tr><td class='l'>{label}</td><td>{x}</td><td>{y}</td></tr>" for label, x, y in rows
    )
    return (
        "<table><tr><th class='l'>figure</th><th>baseline</th><th>candidate</th></tr>"
        f"{body}</table>"
    )


def _notes(report: dict[str, Any]) -> str:
    items = [
        f"<li>{escape(who)} {escape(figure)}: — {escape(reason)}</li>"
        for who in ("baseline", "candidate")
        for figure, reason in report[who]["notes"].items()
    ]
    items += [f"<li>{escape(k)}: — {escape(v)}</li>" for k, v in report["notes"].items()]
    return f"<ul class='notes'>{''.join(items)}</ul>" if items else ""


def _load(report: dict[str, Any]) -> str:
    a, b = report["baseline"]["load"], report["candidate"]["load"]
    if a["reps"] is None:
        return f"<p class='muted'>— {escape(a['reason'] or '')}</p>"
    reps = sorted(set(a["reps"]) | set(b["reps"] or {}))
    body = "".join(
        f"<tr><td class='l'>{escape(rep)}</td><td>{a['reps'].get(rep, 0)}</td>"
        f"<td>{(b['reps'] or {}).get(rep, 0)}</td></tr>"
        for rep in reps
    )
    return (
        "<table><tr><th class='l'>rep</th><th>baseline</th><th>candidate</th></tr>"
        f"{body}<tr><td class='l'>queued</td><td>{a['queued']}</td><td>{b['queued']}</td></tr>"
        "</table>"
    )


def _examples(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p class='muted'>none</p>"
    body = "".join(
        f"<tr><td class='l'>{r['person_id']}</td><td class='l'>{escape(r['at'])}</td>"
        f"<td class='l'>{escape(r['why'])}</td><td class='l'>{escape(r['why_not_other'])}</td></tr>"
        for r in rows
    )
    return (
        "<table><tr><th class='l'>person</th><th class='l'>first MQL day</th>"
        "<th class='l'>why MQL</th><th class='l'>why not under the other</th></tr>"
        f"{body}</table>"
    )


def render_backtest(report: dict[str, Any]) -> str:
    a, b = report["baseline"], report["candidate"]
    flips = report["flips"]
    gained = report["median_days_gained"]
    gained_text = "—" if gained is None else f"{gained:+.1f} days"
    weeks_rows = "".join(
        f"<tr><td class='l'>{escape(w['week'])}</td><td>{w['baseline_mqls']}</td>"
        f"<td>{w['candidate_mqls']}</td><td>{w['flips_in']}</td><td>{w['flips_out']}</td></tr>"
        for w in report["weeks"]
    )
    title = f"Backtest: {escape(str(b['version']))} against {escape(str(a['version']))}"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>{STYLE}</style></head><body><main>
<h1>{title}</h1>
<p class="muted">{escape(report["from"])} to {escape(report["to"])} ({report["days"]} days,
engine {escape(report["engine"])}); median days gained before the outcome: {gained_text}</p>
<div class="grid">
<div class="card span-6"><h2>Figures</h2>{_figures(report)}</div>
<div class="card span-6"><h2>Load per rep (today's routing)</h2>{_load(report)}</div>
<div class="card span-12"><h2>MQLs per week</h2>{weekly_svg(report["weeks"])}
<table><tr><th class='l'>week</th><th>baseline</th><th>candidate</th><th>flips in</th>
<th>flips out</th></tr>{weeks_rows}</table></div>
<div class="card span-12"><h2>Flips in: {flips["in"]} MQL under the candidate only</h2>
{_examples(flips["examples_in"])}</div>
<div class="card span-12"><h2>Flips out: {flips["out"]} MQL under the baseline only</h2>
{_examples(flips["examples_out"])}</div>
<div class="card span-12"><h2>Notes</h2>{_notes(report) or "<p class='muted'>none</p>"}</div>
</div></main></body></html>
"""

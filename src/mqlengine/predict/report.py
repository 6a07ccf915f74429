"""An evaluation (``evaluate.report``) as plain text or as a self-contained HTML page
(inline SVG charts, no scripts, nothing fetched)."""

from __future__ import annotations

import html
import math
from typing import Any

NAMES = {
    "model": "model (tuned LightGBM, calibrated)",
    "lightgbm_default": "LightGBM, default parameters",
    "logistic": "logistic regression",
    "naive_bayes": "naive Bayes (Odoo CRM style)",
    "rules": "definition's fit rules",
}
COLORS = {
    "model": "#1f77b4",
    "lightgbm_default": "#9467bd",
    "logistic": "#2ca02c",
    "naive_bayes": "#ff7f0e",
    "rules": "#d62728",
}


def _f(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def text(doc: dict[str, Any]) -> str:
    out: list[str] = []
    out.append(
        f"{doc['file']}: {doc['rows']:,} rows, {doc['positives']:,} positive "
        f"({doc['label']} = {doc['positive']!r}, {doc['positive_rate']:.1%})"
    )
    v = doc["validation"]
    out.append(
        f"{v['folds']}-fold stratified cross-validation, seed {v['seed']}; "
        f"features: {', '.join(doc['features'])}"
    )
    if doc["dropped"]:
        out.append(f"dropped: {', '.join(doc['dropped'])}")
    for warning in doc["warnings"]:
        out.append(f"warning: {warning}")
    out.append("")
    out.append(f"{'':38} {'ROC AUC':>8} {'PR AUC':>8} {'log loss':>9} {'Brier':>8}")
    for name, entry in doc["models"].items():
        out.append(
            f"{NAMES.get(name, name):38} {_f(entry['roc_auc']):>8} {_f(entry['pr_auc']):>8} "
            f"{_f(entry['log_loss']):>9} {_f(entry['brier']):>8}"
        )
    for name, entry in doc["models"].items():
        out.append("")
        out.append(f"== {NAMES.get(name, name)}")
        cut = entry["at_threshold"]
        out.append(
            f"at threshold {_f(cut['threshold'])} ({entry['threshold_unit']}): "
            f"{cut['flagged']:,} flagged, precision {_f(cut['precision'], 3)}, "
            f"recall {_f(cut['recall'], 3)}"
        )
        out.append("calibration (predicted → observed):")
        for b in entry["calibration_curve"]:
            out.append(
                f"  {b['low']:.1f}–{b['high']:.1f}: {b['count']:>7,} leads, predicted "
                f"{b['mean_predicted']:.3f}, observed {b['observed']:.3f}"
            )
        out.append("decile   leads  positives   rate    lift   cumulative gain")
        for d in entry["deciles"]:
            out.append(
                f"  {d['decile']:>4} {d['count']:>7,} {d['positives']:>10,} {d['rate']:>6.3f} "
                f"{_f(d['lift'], 2):>7} {_f(d['cumulative_gain'], 3):>17}"
            )
    return "\n".join(out) + "\n"


# -- HTML --------------------------------------------------------------------------------

W, H, PAD = 360, 260, 40


def _svg_frame(title: str, x_label: str, y_label: str, body: str, y_max: float = 1.0) -> str:
    ticks = "".join(
        f'<text x="{PAD + t * (W - 2 * PAD) / 4:.1f}" y="{H - PAD + 14}" font-size="10" '
        f'text-anchor="middle">{t / 4:g}</text>'
        f'<text x="{PAD - 4}" y="{H - PAD - t * (H - 2 * PAD) / 4 + 3:.1f}" font-size="10" '
        f'text-anchor="end">{t / 4 * y_max:g}</text>'
        for t in range(5)
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
        f'role="img" aria-label="{html.escape(title)}">'
        f'<text x="{W / 2}" y="14" font-size="12" text-anchor="middle" font-weight="bold">'
        f"{html.escape(title)}</text>"
        f'<rect x="{PAD}" y="{PAD}" width="{W - 2 * PAD}" height="{H - 2 * PAD}" '
        f'fill="none" stroke="#999"/>{ticks}'
        f'<text x="{W / 2}" y="{H - 6}" font-size="11" text-anchor="middle">'
        f"{html.escape(x_label)}</text>"
        f'<text x="12" y="{H / 2}" font-size="11" text-anchor="middle" '
        f'transform="rotate(-90 12 {H / 2})">{html.escape(y_label)}</text>'
        f"{body}</svg>"
    )


def _xy(x: float, y: float, y_max: float = 1.0) -> tuple[float, float]:
    return PAD + x * (W - 2 * PAD), H - PAD - (y / y_max) * (H - 2 * PAD)


def _line(points: list[tuple[float, float]], color: str, y_max: float = 1.0) -> str:
    placed = [_xy(x, y, y_max) for x, y in points]
    coords = " ".join(f"{px:.1f},{py:.1f}" for px, py in placed)
    dots = "".join(
        f'<circle cx="{px:.1f}" cy="{py:.1f}" r="2.5" fill="{color}"/>' for px, py in placed
    )
    return f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="2"/>{dots}'


def _legend(names: list[str]) -> str:
    return "".join(
        f'<span style="color:{COLORS.get(n, "#333")}">■</span> {html.escape(NAMES.get(n, n))} '
        for n in names
    )


def html_page(doc: dict[str, Any]) -> str:
    models = doc["models"]
    names = list(models)
    diagonal = _line([(0, 0), (1, 1)], "#bbb")
    calibration = _svg_frame(
        "Calibration (10 bins)",
        "predicted probability",
        "observed rate",
        diagonal
        + "".join(
            _line(
                [(b["mean_predicted"], b["observed"]) for b in models[n]["calibration_curve"]],
                COLORS.get(n, "#333"),
            )
            for n in names
        ),
    )
    gains = _svg_frame(
        "Cumulative gains by decile",
        "share of leads (highest scores first)",
        "share of positives found",
        diagonal
        + "".join(
            _line(
                [(0.0, 0.0)]
                + [(d["decile"] / 10, d["cumulative_gain"]) for d in models[n]["deciles"]],
                COLORS.get(n, "#333"),
            )
            for n in names
        ),
    )
    top_lift = max(
        [d["lift"] for n in names for d in models[n]["deciles"] if not math.isnan(d["lift"])]
        + [1.0]
    )
    y_max = math.ceil(top_lift)
    lift = _svg_frame(
        "Lift by decile",
        "decile / 10 (highest scores first)",
        "positive rate ÷ overall rate",
        "".join(
            _line(
                [(d["decile"] / 10, d["lift"]) for d in models[n]["deciles"]],
                COLORS.get(n, "#333"),
                y_max,
            )
            for n in names
        ),
        y_max,
    )
    rows = "".join(
        f"<tr><td>{html.escape(NAMES.get(n, n))}</td>"
        + "".join(
            f"<td>{_f(models[n][k])}</td>" for k in ("roc_auc", "pr_auc", "log_loss", "brier")
        )
        + f"<td>{_f(models[n]['at_threshold']['threshold'])} "
        f"({html.escape(models[n]['threshold_unit'])})</td>"
        f"<td>{_f(models[n]['at_threshold']['precision'], 3)}</td>"
        f"<td>{_f(models[n]['at_threshold']['recall'], 3)}</td></tr>"
        for n in names
    )
    decile_tables = "".join(
        f"<h3>{html.escape(NAMES.get(n, n))}</h3><table><tr><th>decile</th><th>leads</th>"
        "<th>positives</th><th>rate</th><th>lift</th><th>cumulative gain</th></tr>"
        + "".join(
            f"<tr><td>{d['decile']}</td><td>{d['count']:,}</td><td>{d['positives']:,}</td>"
            f"<td>{d['rate']:.3f}</td><td>{_f(d['lift'], 2)}</td>"
            f"<td>{_f(d['cumulative_gain'], 3)}</td></tr>"
            for d in models[n]["deciles"]
        )
        + "</table>"
        for n in names
    )
    warnings = "".join(f"<li>{html.escape(w)}</li>" for w in doc["warnings"])
    v = doc["validation"]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Model evaluation — {html.escape(doc["file"])}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}
td, th {{ border: 1px solid #ccc; padding: 3px 8px; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }}
.charts svg {{ margin-right: 1em; }}
</style></head><body>
<h1>Model evaluation</h1>
<p>{html.escape(doc["file"])}: {doc["rows"]:,} rows, {doc["positives"]:,} positive
({html.escape(doc["label"])} = {html.escape(repr(doc["positive"]))},
{doc["positive_rate"]:.1%}). {v["folds"]}-fold stratified cross-validation, seed {v["seed"]};
every figure is from out-of-fold predictions.</p>
<p>Features: {html.escape(", ".join(doc["features"]))}.
Dropped: {html.escape(", ".join(doc["dropped"]) or "none")}.</p>
{f"<h2>Warnings</h2><ul>{warnings}</ul>" if warnings else ""}
<h2>Models</h2>
<table><tr><th>model</th><th>ROC AUC</th><th>PR AUC</th><th>log loss</th><th>Brier</th>
<th>threshold</th><th>precision</th><th>recall</th></tr>{rows}</table>
<p>{_legend(names)}</p>
<div class="charts">{calibration}{gains}{lift}</div>
<h2>Lift and cumulative gains by decile</h2>
{decile_tables}
</body></html>
"""

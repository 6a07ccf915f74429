"""`mql backtest` and `mql threshold suggest`: a candidate definition replayed on history."""

from __future__ import annotations

import sys
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich import box
from rich.console import Console
from rich.table import Table

from mqlengine.cli.common import console, fail, handle_errors, now, wiring

threshold_app = typer.Typer(
    help="The threshold that fills sales capacity best, from history.", no_args_is_help=True
)


class BacktestFormat(StrEnum):
    text = "text"
    json = "json"
    html = "html"


class On(StrEnum):
    total = "total"
    likelihood = "likelihood"


FromOpt = Annotated[
    str | None, typer.Option("--from", help="First day (YYYY-MM-DD; default: 90 days ago).")
]
ToOpt = Annotated[str | None, typer.Option("--to", help="Last day (default: yesterday).")]
EngineOpt = Annotated[str, typer.Option(help="Batch engine: python, duckdb or spark.")]


def _day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value.strip()[:10])
    except ValueError:
        fail(f"{option} {value!r}: expected a date as YYYY-MM-DD", 2)
    return None


def window(start: str | None, end: str | None) -> tuple[date, date]:
    from datetime import timedelta

    from mqlengine.batch.backtest import default_window

    _, last = default_window(now())
    chosen_end = _day(end, "--to") or last
    chosen_start = _day(start, "--from") or (chosen_end - timedelta(days=89))
    if chosen_start > chosen_end:
        fail(f"--from {chosen_start} is after --to {chosen_end}", 2)
    return chosen_start, chosen_end


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _num(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def print_report(report: dict[str, Any], *, examples: int = 10, to: Console | None = None) -> None:
    """The backtest as tables: figures side by side, weeks, flips with why, notes."""
    c = to or console
    a, b = report["baseline"], report["candidate"]
    table = Table(
        title=f"backtest {report['from']} … {report['to']} ({report['days']} days, "
        f"{report['engine']})",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("figure")
    table.add_column(f"baseline {a['version']}", justify="right")
    table.add_column(f"candidate {b['version']}", justify="right")
    for label, key, show in (
        ("threshold", "threshold", lambda v: f"{v:g}"),
        ("MQLs", "mqls", _num),
        ("MQLs per week", "per_week", lambda v: _num(v, 1)),
        ("left MQL", "left_mql", _num),
        ("precision (reached sql)", "precision", _pct),
        ("recall (wins MQL first)", "recall", _pct),
        ("median days MQL → sql", "median_days_to_outcome", lambda v: _num(v, 1)),
        ("pipeline (recorded)", "pipeline", _num),
    ):
        table.add_row(label, show(a[key]), show(b[key]))
    c.print(table)
    gained = report["median_days_gained"]
    c.print(
        "median days gained before the outcome: "
        + ("—" if gained is None else f"{gained:+.1f} (over {report['days_gained_compared']})"),
        highlight=False,
    )
    if a["load"]["reps"] is not None:
        load = ", ".join(
            f"{rep} {a['load']['reps'].get(rep, 0)}→{(b['load']['reps'] or {}).get(rep, 0)}"
            for rep in sorted(set(a["load"]["reps"]) | set(b["load"]["reps"] or {}))
        )
        c.print(f"MQLs per rep (baseline→candidate): {load}", highlight=False)
    weeks = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("week", "baseline", "candidate", "flips in", "flips out"):
        weeks.add_column(column, justify="left" if column == "week" else "right")
    for w in report["weeks"]:
        weeks.add_row(
            w["week"],
            str(w["baseline_mqls"]),
            str(w["candidate_mqls"]),
            str(w["flips_in"]),
            str(w["flips_out"]),
        )
    c.print(weeks)
    flips = report["flips"]
    for label, key, count in (
        ("MQL under the candidate only", "examples_in", flips["in"]),
        ("MQL under the baseline only", "examples_out", flips["out"]),
    ):
        c.print(f"{label}: {count}", style="bold", highlight=False)
        for row in flips[key][:examples]:
            c.print(
                f"  {row['person_id']} ({row['at']}): {row['why']} — other: {row['why_not_other']}",
                highlight=False,
            )
    for who in ("baseline", "candidate"):
        for figure, reason in report[who]["notes"].items():
            c.print(f"{who} {figure}: — {reason}", style="dim", highlight=False)
    for figure, reason in report["notes"].items():
        c.print(f"{figure}: — {reason}", style="dim", highlight=False)


@handle_errors
def backtest(
    candidate: Annotated[Path, typer.Option(help="The candidate definition file.")],
    baseline: Annotated[
        str, typer.Option(help="live, a definition file, or a stored version.")
    ] = "live",
    start: FromOpt = None,
    end: ToOpt = None,
    engine: EngineOpt = "python",
    format: Annotated[BacktestFormat, typer.Option("--format", "-f")] = BacktestFormat.text,
    out: Annotated[Path | None, typer.Option(help="Write the report to this file.")] = None,
) -> None:
    """Replay the recorded history under the baseline and the candidate, day by day, and
    compare MQL volume, flips, precision, recall, days gained, rep load and pipeline."""
    from mqlengine.batch.backtest import backtest as run_backtest
    from mqlengine.batch.backtest import engine_named
    from mqlengine.cli.definition import resolve
    from mqlengine.definition.compiler import load_definition

    eng = wiring(create=False)
    cand = load_definition(candidate)
    base = resolve(eng, baseline)
    first, last = window(start, end)
    report = run_backtest(
        eng.db,
        base.definition,
        cand.definition,
        start=first,
        end=last,
        engine=engine_named(engine),
    )
    if format is BacktestFormat.text and out is None:
        print_report(report)
        return
    if format is BacktestFormat.html:
        from mqlengine.dashboard.backtest_html import render_backtest

        text = render_backtest(report)
    elif format is BacktestFormat.json:
        text = orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n"
    else:
        from io import StringIO

        buffer = StringIO()
        print_report(report, to=Console(file=buffer, width=120, soft_wrap=True))
        text = buffer.getvalue()
    if out is None:
        sys.stdout.write(text)
        return
    out.write_text(text, encoding="utf-8")
    console.print(f"wrote {out}", highlight=False)


@threshold_app.command("suggest")
@handle_errors
def suggest(
    capacity: Annotated[str, typer.Option(help="MQLs sales can take, e.g. 120/week or 20/day.")],
    on: Annotated[On, typer.Option(help="What the threshold applies to.")] = On.total,
    start: FromOpt = None,
    end: ToOpt = None,
    thresholds: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated thresholds to try (default: ½× … 2× the live one; "
            "likelihood: 0.05 … 0.8)."
        ),
    ] = None,
    engine: EngineOpt = "python",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The threshold that fills sales capacity with the most expected conversions, with the
    MQL volume per week, precision and recall it implies on the recorded history.

    With --on likelihood: the live model's likelihood, replayed point-in-time, as the
    qualification (min_fit, exclusions and requirements still apply); the live value shown
    is qualify.min_likelihood."""
    from mqlengine.batch.backtest import engine_named
    from mqlengine.batch.threshold import parse_capacity
    from mqlengine.batch.threshold import suggest as run_suggest

    per_week = parse_capacity(capacity)
    values: list[float] | None = None
    if thresholds:
        try:
            values = [float(v) for v in thresholds.split(",") if v.strip()]
        except ValueError:
            fail(f"--thresholds {thresholds!r}: expected numbers separated by commas", 2)
    eng = wiring(create=False)
    definition = eng.definition().definition
    first, last = window(start, end)
    result = run_suggest(
        eng.db,
        definition,
        capacity_per_week=per_week,
        start=first,
        end=last,
        on=on.value,
        thresholds=values,
        engine=engine_named(engine),
    )
    if as_json:
        sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    table = Table(
        title=f"thresholds on {result['on']}, {result['from']} … {result['to']} "
        f"(capacity {per_week:g}/week)",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for column in ("threshold", "MQLs/week", "conversions", "precision", "recall", "fits"):
        table.add_column(column, justify="right")
    for row in result["candidates"]:
        mark = "◀" if row["threshold"] == result["suggested"] else ""
        table.add_row(
            f"{row['threshold']:g} {mark}",
            f"{row['per_week']:.1f}",
            str(row["conversions"]),
            _pct(row["precision"]),
            _pct(row["recall"]),
            "yes" if row["fits"] else "no",
        )
    console.print(table)
    best = result["expected"]
    live = result["live_threshold"]
    console.print(
        f"suggested threshold {result['suggested']:g} "
        f"(live {'none' if live is None else f'{live:g}'}):"
        f" {best['per_week']:.1f} MQLs/week, precision {_pct(best['precision'])}, "
        f"recall {_pct(best['recall'])}",
        highlight=False,
    )
    for note in result["notes"]:
        console.print(note, style="yellow", highlight=False)
    for figure, reason in best["notes"].items():
        console.print(f"{figure}: — {reason}", style="dim", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("backtest")(backtest)
    app.add_typer(threshold_app, name="threshold")

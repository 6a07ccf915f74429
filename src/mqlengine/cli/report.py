"""`mql report …`, `mql spend import` and `mql history import`: thin shells over reports/."""

from __future__ import annotations

import csv
import io
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from mqlengine.cli.common import console, escape, fail, handle_errors, wiring
from mqlengine.cli.common import now as _now
from mqlengine.cli.common import parse_when as _when
from mqlengine.cli.csvopts import (
    DecimalOpt,
    DelimiterOpt,
    EncodingOpt,
    FileTzOpt,
    StrictOpt,
    csv_options,
    print_ignored,
    print_problems,
)

report_app = typer.Typer(
    help="Funnel reports: funnel, cohorts, channels, sla, velocity, …", no_args_is_help=True
)
spend_app = typer.Typer(help="Marketing spend (for cost per MQL and CAC).", no_args_is_help=True)
history_app = typer.Typer(
    help="Historical leads with outcomes (CRM history).", no_args_is_help=True
)


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


SinceOpt = Annotated[
    str | None, typer.Option("--since", help="From this date/time (ISO, inclusive).")
]
UntilOpt = Annotated[
    str | None, typer.Option("--until", help="Up to this date/time (ISO, exclusive).")
]
ByOpt = Annotated[
    str | None,
    typer.Option(
        "--by",
        help="Break down by channel, source, campaign, mql_type, definition_version, team, rep "
        "or cohort.",
    ),
]
FormatOpt = Annotated[OutputFormat, typer.Option("--format", "-f")]
ChannelOpt = Annotated[str | None, typer.Option("--channel", help="Only this channel.")]
CampaignOpt = Annotated[str | None, typer.Option("--campaign", help="Only this campaign.")]
TzOpt = Annotated[str, typer.Option("--tz", help="Time zone of cohort months and weeks.")]
RatesOpt = Annotated[
    Path | None,
    typer.Option(
        "--rates",
        help="CSV currency,rate (value of one unit in the report currency, which has rate 1): "
        "converts spend in several currencies; without it spend is shown per currency.",
    ),
]

PERCENT = {
    "mql_rate",
    "requalification_rate",
    "sal_rate",
    "acceptance_rate",
    "mql_to_sql",
    "mql_to_opportunity",
    "mql_to_customer",
    "rejection_rate",
    "recycle_rate",
    "disqualification_rate",
    "loss_rate",
    "sla_compliance",
    "win_rate",
    "share",
    "share_of_rejected",
    "share_of_accepted",
    "conversion",
}
COLUMNS: dict[str, tuple[str, ...]] = {
    "funnel": (
        "key",
        "new_leads",
        "leads_became_mql",
        "mql_rate",
        "mqls",
        "acceptance_rate",
        "mql_to_sql",
        "customers",
        "rejection_rate",
        "recycle_rate",
        "disqualification_rate",
        "loss_rate",
        "time_to_mql_p50_days",
        "time_to_mql_p90_days",
        "time_to_mql_mean_days",
        "spend",
        "currency",
        "cost_per_mql",
        "cac",
    ),
    "sla": (
        "key",
        "mqls",
        "touched",
        "speed_to_lead_p50_hours",
        "speed_to_lead_p90_hours",
        "speed_to_lead_mean_hours",
        "sla_met",
        "breaches",
        "pending",
        "sla_compliance",
    ),
    "velocity": (
        "key",
        "opportunities",
        "won",
        "lost",
        "win_rate",
        "average_deal",
        "cycle_p50_days",
        "cycle_p90_days",
        "cycle_days",
        "mql_to_won_p50_days",
        "mql_to_won_p90_days",
        "mql_to_won_days",
        "velocity_per_day",
    ),
}
LABELS = {
    "key": "",
    "new_leads": "leads",
    "leads_became_mql": "leads→MQL",
    "mqls": "MQL entries",
    "mql_rate": "MQL rate",
    "acceptance_rate": "accept",
    "mql_to_sql": "MQL→SQL",
    "customers": "cust.",
    "recycle_rate": "recycle",
    "rejection_rate": "reject",
    "disqualification_rate": "disq.",
    "loss_rate": "lost",
    "time_to_mql_p50_days": "TTM p50 d",
    "time_to_mql_p90_days": "TTM p90 d",
    "time_to_mql_mean_days": "TTM mean d",
    "currency": "cur.",
    "speed_to_lead_mean_hours": "mean h",
    "cycle_p50_days": "cycle p50 d",
    "cycle_p90_days": "cycle p90 d",
    "cycle_days": "cycle mean d",
    "mql_to_won_p50_days": "MQL→won p50 d",
    "mql_to_won_p90_days": "MQL→won p90 d",
    "mql_to_won_days": "MQL→won mean d",
    "cost_per_mql": "cost/MQL",
    "cac": "CAC",
    "speed_to_lead_p50_hours": "p50 h",
    "speed_to_lead_p90_hours": "p90 h",
    "sla_met": "met",
    "sla_compliance": "compliance",
    "opportunities": "opps",
    "average_deal": "avg deal",
    "velocity_per_day": "velocity/day",
    "in_rejected": "in rejected",
    "share_of_rejected": "% rejected",
    "share_of_accepted": "% accepted",
}


def _filters(
    since: str | None, until: str | None, channel: str | None, campaign: str | None, tz: str
) -> Any:
    from mqlengine.reports.filters import check_zone
    from mqlengine.reports.query import Filters

    return Filters(
        since=_when(since, "--since"),
        until=_when(until, "--until"),
        channel=channel,
        campaign=campaign,
        tz=check_zone(tz),
    )


def _load_rates(path: Path | None) -> Any:
    if path is None:
        return None
    from mqlengine.reports.rates import load_rates

    return load_rates(path)


def _flat(value: Any) -> Any:
    """A CSV cell: notes as 'field: reason; …', per-currency amounts as 'EUR 1000.00; …'."""
    if isinstance(value, dict):
        return "; ".join(
            f"{k}: {v}" if not isinstance(v, int | float) else f"{k} {v:.2f}"
            for k, v in value.items()
        )
    return value


def _footnotes(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> list[str]:
    """One line per figure shown as "—" and its reason (rows with the same reason merged)."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for row in rows:
        for field, reason in (row.get("notes") or {}).items():
            if field in columns and row.get(field) is None:
                grouped.setdefault((field, reason), []).append(str(row.get("key")))
    lines = []
    for (field, reason), keys in grouped.items():
        label = LABELS.get(field) or field.replace("_", " ")
        where = (
            "" if keys == ["total"] else f" ({', '.join(keys[:8])}{', …' if len(keys) > 8 else ''})"
        )
        lines.append(f"— {label}{where}: {reason}")
    return lines


def _fitting(
    rows: list[dict[str, Any]], columns: tuple[str, ...], width: int
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The leading columns that fit ``width`` whole (a number is never cut), and the rest."""
    used = 4  # the table's outer borders
    shown: list[str] = []
    for index, column in enumerate(columns):
        label = LABELS.get(column, column.replace("_", " "))
        cells = [_cell(column, row.get(column)) for row in rows]
        need = max([len(label), *(len(c) for c in cells)]) + 3
        if shown and used + need > width:
            return tuple(shown), columns[index:]
        used += need
        shown.append(column)
    return tuple(shown), ()


def _cell(name: str, value: Any) -> str:
    if value is None:
        return "—"
    if name in PERCENT and isinstance(value, int | float):
        return f"{value:.1%}"
    if isinstance(value, float):
        return f"{value:,.2f}"  # the same decimals in every row: 1,014.00 beside 91.60
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _emit(
    rows: list[dict[str, Any]],
    columns: tuple[str, ...],
    fmt: OutputFormat,
    title: str,
    payload: Any,
) -> None:
    if fmt is OutputFormat.json:
        sys.stdout.write(
            orjson.dumps(payload, option=orjson.OPT_INDENT_2, default=str).decode() + "\n"
        )
        return
    if fmt is OutputFormat.csv:
        buffer = io.StringIO()
        fields: list[str] = []
        for row in rows or [dict.fromkeys(columns)]:
            fields.extend(f for f in row if f not in fields)
        if "notes" in fields:  # the reasons for "—" last, as a note column
            fields.remove("notes")
            fields.append("notes")
        writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows({k: _flat(v) for k, v in row.items()} for row in rows)
        sys.stdout.write(buffer.getvalue())
        return
    # Piped output is not cut to 80 columns (the terminal's width when there is one).
    out = console if console.is_terminal else Console(width=240, markup=False)
    shown, hidden = _fitting(rows, columns, out.width)
    columns = shown
    table = Table(title=title)
    cells = [[_cell(c, row.get(c)) for c in columns] for row in rows]
    for index, column in enumerate(columns):
        text = column in ("key", "rule", "action", "reason")
        label = LABELS.get(column, column.replace("_", " "))
        widest = max([len(label), *(len(r[index]) for r in cells)])
        table.add_column(
            label,
            justify="left" if text else "right",
            no_wrap=True,
            min_width=widest,  # whole words and numbers, never "1,…" (see _fitting)
        )
    for row_cells in cells:
        table.add_row(*row_cells)
    out.print(table)
    if hidden:
        labels = ", ".join(LABELS.get(c, c.replace("_", " ")) for c in hidden)
        out.print(
            f"{len(hidden)} more column(s) not shown at this width ({labels}): "
            "--format csv shows every column",
            highlight=False,
            soft_wrap=True,
        )
    for line in _footnotes(rows, columns):
        out.print(line, highlight=False, markup=False, soft_wrap=True)


def _no_breakdown(report: str, by: str | None, why: str) -> None:
    """Every report takes ``--by``; the ones without a breakdown say so in one line."""
    if by is not None:
        fail(
            f"--by {by!r}: the {report} report has no breakdown ({why}); "
            "narrow it with --channel or --campaign",
            2,
        )


def _run(name: str, filters: Any, by: str | None, rates: Any = None) -> dict[str, Any]:
    from mqlengine.reports.service import health_rules, run_report
    from mqlengine.reports.source import open_report_source

    eng = wiring(create=False)
    # only these reports read the definition's rules of thumb (loading it costs a cold
    # command a few tenths of a second)
    needs_rules = name in ("sla", "health", "overview")
    rules = health_rules(eng.definition_or_none() if needs_rules else None)
    # one report: the columnar copy read in place (nothing to read in an empty store)
    with open_report_source(eng.db) as data:
        return run_report(
            eng.db, name, filters, now=eng.clock(), rules=rules, by=by, rates=rates, data=data
        )


def _tabular(
    name: str,
    fmt: OutputFormat,
    since: str | None,
    until: str | None,
    by: str | None,
    channel: str | None,
    campaign: str | None,
    tz: str,
    rates: Path | None = None,
) -> None:
    result = _run(name, _filters(since, until, channel, campaign, tz), by, _load_rates(rates))
    columns = COLUMNS.get(name, COLUMNS["funnel"])
    _emit(result["rows"], columns, fmt, f"{name} by {result.get('by') or 'total'}", result)


@report_app.command("funnel")
@handle_errors
def funnel_cmd(
    since: SinceOpt = None,
    until: UntilOpt = None,
    by: ByOpt = None,
    format: FormatOpt = OutputFormat.table,
    channel: ChannelOpt = None,
    campaign: CampaignOpt = None,
    tz: TzOpt = "UTC",
    rates: RatesOpt = None,
) -> None:
    """Volumes and cohort-correct conversion rates (MQL → SAL → SQL → opportunity → customer)."""
    _tabular("funnel", format, since, until, by, channel, campaign, tz, rates)


@report_app.command("cohorts")
@handle_errors
def cohorts_cmd(
    since: SinceOpt = None,
    until: UntilOpt = None,
    by: Annotated[
        str,
        typer.Option("--by", help="cohort (MQL month), lead_cohort (month first seen) or week."),
    ] = "cohort",
    format: FormatOpt = OutputFormat.table,
    channel: ChannelOpt = None,
    campaign: CampaignOpt = None,
    tz: TzOpt = "UTC",
    rates: RatesOpt = None,
) -> None:
    """The funnel per cohort: MQLs by the month they became MQL (--by lead_cohort: leads
    and their MQLs by the month the lead was first seen)."""
    if by not in ("cohort", "lead_cohort", "week"):
        fail(f"--by {by!r}: use cohort, lead_cohort or week", 2)
    _tabular("cohorts", format, since, until, by, channel, campaign, tz, rates)


@report_app.command("channels")
@handle_errors
def channels_cmd(
    since: SinceOpt = None,
    until: UntilOpt = None,
    by: ByOpt = None,
    format: FormatOpt = OutputFormat.table,
    channel: ChannelOpt = None,
    campaign: CampaignOpt = None,
    tz: TzOpt = "UTC",
    rates: RatesOpt = None,
) -> None:
    """The funnel per channel (or --by campaign/source) with cost per MQL and CAC."""
    _tabular("channels", format, since, until, by, channel, campaign, tz, rates)


@report_app.command("sla")
@handle_errors
def sla_cmd(
    since: SinceOpt = None,
    until: UntilOpt = None,
    by: ByOpt = None,
    format: FormatOpt = OutputFormat.table,
    channel: ChannelOpt = None,
    campaign: CampaignOpt = None,
    tz: TzOpt = "UTC",
) -> None:
    """Speed to lead p50/p90, SLA compliance and breaches."""
    _tabular("sla", format, since, until, by, channel, campaign, tz)


@report_app.command("velocity")
@handle_errors
def velocity_cmd(
    since: SinceOpt = None,
    until: UntilOpt = None,
    by: ByOpt = None,
    format: FormatOpt = OutputFormat.table,
    channel: ChannelOpt = None,
    campaign: CampaignOpt = None,
    tz: TzOpt = "UTC",
) -> None:
    """Pipeline velocity = opportunities × win rate × average deal ÷ cycle days."""
    _tabular("velocity", format, since, until, by, channel, campaign, tz)


@report_app.command("reasons")
@handle_errors
def reasons_cmd(
    since: SinceOpt = None,
    until: UntilOpt = None,
    format: FormatOpt = OutputFormat.table,
    channel: ChannelOpt = None,
    campaign: CampaignOpt = None,
    tz: TzOpt = "UTC",
    by: ByOpt = None,
) -> None:
    """Rejection, recycle, disqualification and loss reasons; rules behind rejected MQLs."""
    _no_breakdown("reasons", by, "it counts per action and reason code")
    result = _run("reasons", _filters(since, until, channel, campaign, tz), None)
    if format is not OutputFormat.table:
        rows = result["reasons"] + [
            {"action": "rule_in_rejected", **r} for r in result["rules_in_rejected"]
        ]
        _emit(rows, ("action", "reason", "count", "share"), format, "reasons", result)
        return
    _emit(result["reasons"], ("action", "reason", "count", "share"), format, "reasons", result)
    _emit(
        result["rules_in_rejected"],
        ("rule", "in_rejected", "share_of_rejected", "share_of_accepted", "lift"),
        format,
        "definition rules in rejected MQLs (lift > 1: more common in rejected than accepted)",
        result,
    )


@report_app.command("health")
@handle_errors
def health_cmd(
    format: FormatOpt = OutputFormat.table,
    notify: Annotated[
        bool, typer.Option(help="Write alerts to the outbox (once a day each).")
    ] = True,
    channel: ChannelOpt = None,
    campaign: CampaignOpt = None,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Judge the window ending at this time (default now)."),
    ] = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    by: ByOpt = None,
) -> None:
    """Health alerts (rules of thumb from the definition) and the 0–100 health score over
    the definition's window before --as-of (or exactly --since … --until)."""
    _no_breakdown("health", by, "it judges the whole funnel")
    from mqlengine.reports.service import (
        HEALTH_TOPIC,
        health_rules,
        notify_health_alerts,
        run_report,
    )

    eng = wiring(create=False)
    now = _when(as_of, "--as-of") or _now()
    loaded = eng.definition_or_none()
    rules = health_rules(loaded)
    filters = _filters(since, until or (as_of and now.isoformat()), channel, campaign, "UTC")
    result = run_report(
        eng.db,
        "health",
        filters,
        now=now,
        rules=rules,
        definition=loaded.definition if loaded is not None else None,
    )
    # a past window is judged, not alerted on again
    notify = notify and as_of is None and since is None and until is None
    notified = notify_health_alerts(eng.db, result, now=now) if notify else 0
    result["notified"] = notified
    result["alerts_sent"] = notified > 0
    if format is not OutputFormat.table:
        _emit(
            result["components"],
            ("name", "weight", "score", "value", "target"),
            format,
            "health",
            result,
        )
        return
    score = result["score"]
    colour = (
        "green"
        if score is not None and score >= 80
        else "yellow"
        if score is not None and score >= 60
        else "red"
    )
    console.print(
        f"[bold]health score[/] [{colour}]{score if score is not None else '—'}[/]/100 "
        f"from {result['since'][:16]} to {result['until'][:16]} "
        f"({result['window_days']} days, {result['inputs']['mqls']} MQLs)",
        markup=True,
        highlight=False,
    )
    _emit(
        result["components"],
        ("name", "weight", "score", "value", "target"),
        format,
        "components",
        result,
    )
    for field, reason in result["input_notes"].items():
        console.print(f"— {field.replace('_', ' ')}: {reason}", highlight=False, markup=False)
    for alert in result["alerts"]:
        style = "red" if alert["severity"] == "critical" else "yellow"
        console.print(
            f"[{style}]{escape(alert['severity'])}[/]: {escape(alert['message'])}",
            markup=True,
            highlight=False,
        )
    if not result["alerts"]:
        console.print("no alerts", style="green")
    elif notified:
        console.print(f"{notified} alert(s) written to the outbox", highlight=False)
    elif notify:
        console.print(
            f"alerts not sent: no active destination takes {HEALTH_TOPIC} "
            "(mql outbox add-destination …), or they were sent today already",
            highlight=False,
        )


@report_app.command("html")
@handle_errors
def html_cmd(
    out: Annotated[Path, typer.Argument(help="Where to write the report (.html).")],
    since: SinceOpt = None,
    until: UntilOpt = None,
    channel: ChannelOpt = None,
    campaign: CampaignOpt = None,
    tz: TzOpt = "UTC",
    rates: RatesOpt = None,
) -> None:
    """A self-contained HTML report with charts (opens offline)."""
    from mqlengine.dashboard.offline import render_report
    from mqlengine.reports.service import health_rules

    eng = wiring(create=False)
    filters = _filters(since, until, channel, campaign, tz)
    html = render_report(
        eng.db,
        filters,
        now=_now(),
        rules=health_rules(eng.definition_or_none()),
        rates=_load_rates(rates),
    )
    out.write_text(html, encoding="utf-8")
    console.print(f"wrote {out} ({len(html) / 1024:,.0f} KiB)", highlight=False)


MapOpt = Annotated[
    list[str] | None, typer.Option("--map", help="target=Source Column (repeatable).")
]


@spend_app.command("import")
@handle_errors
def spend_import(
    file: Annotated[Path, typer.Argument(help="CSV: channel/campaign, month, amount, currency.")],
    mapping: MapOpt = None,
    delimiter: DelimiterOpt = None,
    encoding: EncodingOpt = None,
    decimal: DecimalOpt = ".",
    tz: FileTzOpt = "UTC",
    strict: StrictOpt = False,
    json_out: Annotated[bool, typer.Option("--json", help="The summary as JSON.")] = False,
) -> None:
    """Import spend per channel/campaign and month (re-importing a month replaces it)."""
    from mqlengine.ingest.importer import parse_mapping
    from mqlengine.reports.spend import import_spend_csv

    if not file.exists():
        fail(f"{file}: no such file", 2)
    options = csv_options(delimiter, encoding, decimal, tz, strict)
    eng = wiring()
    with eng.db.begin() as connection:
        report = import_spend_csv(
            connection, file, parse_mapping(mapping or []), now=_now(), options=options
        )
    totals = (
        ", ".join(f"{amount:,.2f} {cur}" for cur, amount in sorted(report.total.items()))
        or "nothing"
    )
    if json_out:
        summary = {
            "rows": report.rows,
            "created": report.created,
            "updated": report.updated,
            "unchanged": report.unchanged,
            "rejected": report.rejected,
            "stored": report.loaded,
            "total": report.total,
            "problems": [
                {"row": p.row, "reason": p.reason, "warning": p.warning} for p in report.problems
            ],
        }
        sys.stdout.write(orjson.dumps(summary).decode() + "\n")
    else:
        print_ignored(report.columns)
        console.print(
            f"{report.rows} rows: {report.created} new, {report.updated} replacing a stored "
            f"month, {report.unchanged} unchanged, {report.rejected} rejected; "
            f"{report.loaded} channel/campaign-months stored ({totals})",
            highlight=False,
        )
        print_problems(file, report.problems)
    if report.rejected and not (report.created or report.updated or report.unchanged):
        raise typer.Exit(4)


@spend_app.command("list")
@handle_errors
def spend_list(format: FormatOpt = OutputFormat.table) -> None:
    """Show the stored spend."""
    from mqlengine.reports.spend import spend_summary

    with wiring(create=False).db.read() as connection:
        rows = spend_summary(connection)
    _emit(rows, ("month", "channel", "campaign", "amount", "currency"), format, "spend", rows)


@history_app.command("import")
@handle_errors
def history_import(
    file: Annotated[Path, typer.Argument(help="CSV of leads with dates of each stage reached.")],
    mapping: MapOpt = None,
    delimiter: DelimiterOpt = None,
    encoding: EncodingOpt = None,
    decimal: DecimalOpt = ".",
    tz: FileTzOpt = "UTC",
    strict: StrictOpt = False,
    lost_reason: Annotated[
        str, typer.Option("--lost-reason", help="Reason of a lost deal whose row names none.")
    ] = "lost",
    json_out: Annotated[bool, typer.Option("--json", help="The summary as JSON.")] = False,
    show: Annotated[int, typer.Option(help="How many problems to list.")] = 20,
) -> None:
    """Load CRM history: one lead per row with channel and stage dates (created_at, mql_at,
    sal_at, sql_at, opportunity_at, customer_at, rejected_at, …) or a deal's stage and close
    date, so reports work on day one. A later file adds the dates it brings."""
    from mqlengine.ingest.importer import parse_mapping
    from mqlengine.reports.history import import_history_csv

    if not file.exists():
        fail(f"{file}: no such file", 2)
    options = csv_options(delimiter, encoding, decimal, tz, strict)
    eng = wiring()
    loaded = eng.definition_or_none()
    report = import_history_csv(
        eng.db,
        file,
        parse_mapping(mapping or []),
        now=_now(),
        options=options,
        lost_reason=lost_reason,
        gmail_normalize=bool(loaded and loaded.definition.identity.gmail_normalize),
    )
    if report.updated:
        # updates of existing leads (an earlier first-seen date, a channel) may leave no
        # row the copy's refresh follows, and a report checks row versions only now and then
        from mqlengine.reports.data import refresh_columnar

        refresh_columnar(eng.db)
    if json_out:
        sys.stdout.write(orjson.dumps(report.as_dict()).decode() + "\n")
    else:
        print_ignored(report.columns)
        console.print(
            f"{report.rows} rows: {report.created} leads created, "
            f"{report.updated} existing leads given history, "
            f"{report.skipped} unchanged (already imported), {report.rejected} rejected; "
            f"{report.stage_changes} stage changes added, {len(report.warnings)} warnings",
            highlight=False,
        )
        print_problems(file, report.problems, show)
    if report.rejected and not (report.created or report.updated or report.skipped):
        raise typer.Exit(4)


def register(app: typer.Typer) -> None:
    app.add_typer(report_app, name="report")
    app.add_typer(spend_app, name="spend")
    app.add_typer(history_app, name="history")

"""The `mql` command line: thin commands over the library, Rich output."""

from __future__ import annotations

import csv
import io
import shutil
import sys
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.table import Table
from rich.text import Text

from mqlengine.cli.common import (
    console,
    err_console,
    escape,
    fail,
    fitted_table,
    handle_errors,
    state,
    wiring,
)
from mqlengine.cli.common import now as _now
from mqlengine.cli.common import parse_when as _parse_when
from mqlengine.cli.csvopts import DecimalOpt, DelimiterOpt, EncodingOpt, FileTzOpt
from mqlengine.cli.options import GlobalOptionsGroup, fix_flag_help

if TYPE_CHECKING:
    from rich.progress import Progress

    from mqlengine.definition.compiler import LoadedDefinition
    from mqlengine.services.leadfilter import LeadFilter
    from mqlengine.wiring import Wiring

fix_flag_help()
app = typer.Typer(
    name="mql",
    cls=GlobalOptionsGroup,
    help="MQL Engine: explainable Marketing Qualified Leads, as code. "
    "--database and --definition may stand before or after the command.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


class ExplainFormat(StrEnum):
    text = "text"
    json = "json"


class ImportKind(StrEnum):
    auto = "auto"
    jsonl = "jsonl"
    persons = "persons"
    events = "events"


@app.callback()
def main_options(
    database: Annotated[
        str | None,
        typer.Option(
            "--database",
            "-d",
            help="Database URL (default: $MQL_DATABASE_URL or sqlite:///mql.db).",
        ),
    ] = None,
    definition: Annotated[
        Path | None,
        typer.Option(
            "--definition", help="Definition file (default: $MQL_DEFINITION or ./mql.yaml)."
        ),
    ] = None,
) -> None:
    state.database_url = database
    state.definition = definition
    state.wiring = None


def _progress() -> Progress:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(
        TextColumn("{task.description}", style="bold", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
        disable=not err_console.is_terminal,
    )


@app.command()
@handle_errors
def init(
    path: Annotated[Path, typer.Argument(help="Where to write the definition.")] = Path("mql.yaml"),
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Write an annotated example definition to start from."""
    from mqlengine.wiring import TEMPLATE

    if path.exists() and not force:
        fail(f"{path} already exists (use --force to overwrite)")
    shutil.copyfile(TEMPLATE, path)
    console.print(f"wrote {path}; check it with mql validate {path} and mql test {path}")


def _definition_path(path: Path | None) -> Path:
    return path or state.definition or Path("mql.yaml")


@app.command()
@handle_errors
def validate(
    path: Annotated[
        Path | None, typer.Argument(help="Definition file (default ./mql.yaml).")
    ] = None,
) -> None:
    """Check a definition file; errors name file:line:col."""
    from mqlengine.definition.compiler import likelihood_notes, load_definition

    loaded = load_definition(_definition_path(path))
    warnings = [*loaded.warnings, *_database_warnings(loaded)]
    for warning in warnings:
        err_console.print(warning, style="yellow", highlight=False, soft_wrap=True)
    d = loaded.definition
    console.print(
        f"[green]ok[/] {escape(str(loaded.filename))}: version {escape(d.version)}, "
        f"{len(d.fit_rules)} fit rules, "
        f"{len(d.intent_rules)} intent rules, {len(d.exclusions)} exclusions, "
        f"{len(d.requirements)} requirements, threshold {d.qualify.threshold:g}, "
        f"{len(loaded.spec.tests)} tests",
        markup=True,
        highlight=False,
    )
    for line in likelihood_notes(loaded):
        console.print(line, highlight=False, soft_wrap=True)


def _database_warnings(loaded: LoadedDefinition) -> list[str]:
    """Names never seen and teams that do not exist, when a database is there to ask."""
    from mqlengine.errors import MqlError
    from mqlengine.services.definition_check import database_warnings

    try:
        eng = wiring(create=False)
        with eng.db.read() as connection:
            return database_warnings(connection, loaded)
    except MqlError:  # no database (yet): the file alone was checked
        return []


@app.command("test")
@handle_errors
def test_definition(
    path: Annotated[
        Path | None, typer.Argument(help="Definition file (default ./mql.yaml).")
    ] = None,
) -> None:
    """Run the example leads in the definition's `tests:` section."""
    from mqlengine.definition.compiler import load_definition
    from mqlengine.definition.testing import run_tests
    from mqlengine.ingest.profile import build_profile

    loaded = load_definition(_definition_path(path))
    results = run_tests(loaded, _now(), lambda traits: build_profile(traits))
    if not results:
        fail(f"{loaded.filename} has no tests: add a `tests:` section", 1)
    table = Table(title=f"{loaded.filename} — {loaded.definition.version}")
    table.add_column("result")
    table.add_column("test")
    table.add_column("fit", justify="right")
    table.add_column("intent", justify="right")
    table.add_column("total", justify="right")
    table.add_column("details")
    for r in results:
        mark = Text("PASS", style="green") if r.passed else Text("FAIL", style="red")
        details = "; ".join(r.failures) if r.failures else (r.card.mql_type or "lead")
        table.add_row(
            mark,
            r.name,
            f"{r.card.fit:.1f}",
            f"{r.card.intent:.1f}",
            f"{r.card.total:.1f}",
            details,
        )
    console.print(table)
    for r in results:
        for failure in r.failures:
            err_console.print(
                f"FAIL {r.name}: {failure}", style="red", highlight=False, soft_wrap=True
            )
    failed = sum(1 for r in results if not r.passed)
    console.print(f"{len(results) - failed} passed, {failed} failed", highlight=False)
    if failed:
        raise typer.Exit(1)


@app.command("import")
@handle_errors
def import_(
    file: Annotated[
        Path, typer.Argument(help="JSONL of Segment messages, or CSV of persons/events.")
    ],
    kind: Annotated[
        ImportKind, typer.Option(help="What the file holds (auto: by extension; CSV needs --kind).")
    ] = ImportKind.auto,
    mapping: Annotated[
        list[str] | None,
        typer.Option(
            "--map",
            help="Column mapping target=Source Column (repeatable), e.g. --map email='E-mail'.",
        ),
    ] = None,
    show: Annotated[int, typer.Option(help="How many bad rows to list.")] = 20,
    delimiter: DelimiterOpt = None,
    encoding: EncodingOpt = None,
    decimal: DecimalOpt = ".",
    tz: FileTzOpt = "UTC",
) -> None:
    """Load history through the ingest pipeline; bad rows are reported, good rows load."""
    from mqlengine.cli.csvopts import csv_options
    from mqlengine.facade import MqlEngine
    from mqlengine.ingest.importer import parse_mapping

    if not file.exists():
        fail(f"{file}: no such file", 2)
    if kind is ImportKind.auto and file.suffix not in (".jsonl", ".ndjson", ".json"):
        fail(f"{file}: say what the CSV holds with --kind persons or --kind events", 2)
    columns = parse_mapping(mapping or [])
    engine = MqlEngine(wiring())
    with _progress() as bar:
        task = bar.add_task(f"importing {file.name}", total=None)
        report = engine.import_file(
            file,
            kind=kind.value,
            mapping=columns,
            progress=lambda n: bar.advance(task, n),
            options=csv_options(delimiter, encoding, decimal, tz, False),
        )
    console.print(
        f"{report.rows} rows: {report.accepted} loaded, {report.duplicates} duplicates skipped, "
        f"{len(report.problems)} rejected; {len(report.persons)} persons touched, "
        f"{report.mqls} new MQLs",
        highlight=False,
    )
    for problem in report.problems[:show]:
        err_console.print(
            f"{file}:{problem.row}: {problem.reason}",
            style="yellow",
            highlight=False,
            soft_wrap=True,
        )
    if len(report.problems) > show:
        err_console.print(f"… and {len(report.problems) - show} more", style="yellow")
    if report.problems and report.accepted == 0:
        raise typer.Exit(4)


class SlaFilter(StrEnum):
    breached = "breached"
    due = "due"


LEAD_FIELDS = (
    "id",
    "email",
    "stage",
    "mql_type",
    "fit",
    "intent",
    "total",
    "channel",
    "owner",
    "owner_name",
    "team",
    "sla_due_at",
    "first_touch_at",
    "sla_state",
    "why_not",
    "stage_changed_at",
    "mql_at",
    "account_id",
    "scored_at",
    "definition_version",
)
SLA_WORDS = {"on_time": "on time", "due_soon": "due soon", "breached": "breached"}
EXPORT_PAGE = 1000


@app.command()
@handle_errors
def leads(
    stage: Annotated[str | None, typer.Option(help="Only this stage (lead, mql, sal, …).")] = None,
    since: Annotated[
        str | None, typer.Option(help="Stage changed at or after this ISO time.")
    ] = None,
    owner: Annotated[
        str | None, typer.Option(help="Owned by this rep (key or e-mail), or 'queue'.")
    ] = None,
    team: Annotated[str | None, typer.Option(help="Routed to this team.")] = None,
    min_score: Annotated[
        float | None, typer.Option("--min-score", help="Total score at least this.")
    ] = None,
    sla: Annotated[
        SlaFilter | None,
        typer.Option(help="breached: not touched by the deadline; due: waiting, not late yet."),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(min=1, help="At most this many rows (table default 50; exports: all)."),
    ] = None,
    format: Annotated[Format, typer.Option("--format", "-f")] = Format.table,
) -> None:
    """List leads, highest score first, with owner, SLA state and why each is not an MQL."""
    from mqlengine.services.leadfilter import LeadFilter, LeadPage

    eng = wiring(create=False)
    filters = LeadFilter.parse(
        {
            "stage": stage,
            "since": _parse_when(since, "--since"),
            "owner": owner,
            "team": team,
            "score_min": min_score,
            "sla": sla.value if sla is not None else None,
        }
    )
    now = _now()
    # a store without persons lists none (asked without loading the query code)
    empty = eng.db.tables_empty(("persons",))
    if format is not Format.table:
        _export_leads(eng, filters, now, limit, format, empty=empty)
        return
    page = LeadPage([], 0, 0, limit or 50)
    if not empty:
        from mqlengine.services.leads import explain_waiting, query_leads

        with eng.db.read() as connection:
            page = query_leads(connection, filters, now=now, sort="score", limit=limit or 50)
            if _waiting(page.rows):  # the definition is read only when a lead needs it
                explain_waiting(connection, eng.definition().definition, page.rows, now)
    cells = [
        (
            str(r["id"]),
            r["email"] or "",
            r["stage"],
            f"{r['total']:,.1f}",
            r["owner"] or "",
            SLA_WORDS.get(r["sla_state"] or "", ""),
            r.get("why_not") or "",
        )
        for r in page.rows
    ]
    table = fitted_table(
        ("id", "email", "stage", "score", "owner", "SLA", "why not MQL"),
        cells,
        numeric={"id", "score"},
        whole={"stage", "SLA"},
        flexible={"email": 26, "owner": 10, "why not MQL": None},
    )
    console.print(table)
    shown = len(page.rows)
    note = f"showing {shown:,} of {page.total:,}"
    if page.cut:
        note += "; --limit N for more, --format csv for every row and column"
    else:
        note += "; --format csv for every column"
    err_console.print(note, highlight=False)


def _waiting(rows: list[dict[str, Any]]) -> bool:
    """Whether a row is a lead still waiting to qualify (its "why not MQL" needs the
    definition)."""
    return any(r["stage"] in ("lead", "nurture") for r in rows)


def _export_leads(
    eng: Wiring,
    filters: LeadFilter,
    now: datetime,
    limit: int | None,
    format: Format,
    *,
    empty: bool,
) -> None:
    """Every matching lead (or the first --limit, said on stderr), page by page."""
    rows: list[dict[str, object]] = []
    total = 0
    if not empty:
        total = _collect_leads(eng, filters, now, limit, rows)
    if format is Format.json:
        data = [{k: r.get(k) for k in LEAD_FIELDS} for r in rows]
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=LEAD_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        sys.stdout.write(buffer.getvalue())
    if len(rows) < total:
        err_console.print(
            f"note: --limit {limit:,} cut the export to {len(rows):,} of {total:,} leads",
            style="yellow",
            highlight=False,
        )


def _collect_leads(
    eng: Wiring,
    filters: LeadFilter,
    now: datetime,
    limit: int | None,
    rows: list[dict[str, object]],
) -> int:
    """Add every matching lead (at most ``limit``) to ``rows``, page by page; how many
    match in all."""
    from mqlengine.services.leads import explain_waiting, query_leads

    total = 0
    with eng.db.read() as connection:
        offset = 0
        while True:
            size = EXPORT_PAGE if limit is None else min(EXPORT_PAGE, limit - len(rows))
            if size <= 0:
                break
            page = query_leads(
                connection,
                filters,
                now=now,
                sort="score",
                offset=offset,
                limit=size,
                count=offset == 0,
            )
            if _waiting(page.rows):
                explain_waiting(connection, eng.definition().definition, page.rows, now)
            if offset == 0:
                total = page.total
            rows.extend(page.rows)
            offset += len(page.rows)
            if len(page.rows) < size:
                break
    return total


@app.command()
@handle_errors
def explain(
    person: Annotated[
        str,
        typer.Argument(
            metavar="PERSON",
            help="Person id (see `mql leads`), an e-mail address, or kind:value with kind "
            "user_id, anonymous_id, email, phone or external_id.",
        ),
    ],
    format: Annotated[ExplainFormat, typer.Option("--format", "-f")] = ExplainFormat.text,
    as_of: Annotated[
        str | None, typer.Option(help="Explain the score as of this ISO time.")
    ] = None,
    history: Annotated[
        bool,
        typer.Option("--history", help="Also the score over time and the events that moved it."),
    ] = False,
) -> None:
    """Show why a person has its score and stage: every rule, event and cap; its owner,
    SLA and (with --history) its score timeline."""
    from mqlengine.domain.explain import card_to_dict, explain_lines
    from mqlengine.facade import MqlEngine
    from mqlengine.services.leads import score_timeline

    moment = _parse_when(as_of, "--as-of")
    eng = wiring(create=False)
    detail = MqlEngine(eng).explain(person, as_of=moment)
    card = detail.card
    timeline: list[dict[str, Any]] = []
    if history:
        with eng.db.read() as connection:
            timeline = score_timeline(connection, detail.person["id"])
    if format is ExplainFormat.json:
        payload = {
            "person": detail.person,
            "score_card": card_to_dict(card),
            "stage_history": detail.history,
            "consent": detail.consent,
        }
        if history:
            payload["timeline"] = timeline
        sys.stdout.write(
            orjson.dumps(payload, option=orjson.OPT_INDENT_2, default=str).decode() + "\n"
        )
        return
    p = detail.person
    console.print(
        f"[bold]person {p['id']}[/] {escape(p.get('email') or '')} — stage "
        f"[bold]{escape(p['stage'])}[/]"
        + (f" ({escape(p['mql_type'])})" if p.get("mql_type") else ""),
        markup=True,
        highlight=False,
    )
    owner = p.get("owner")
    if owner or p.get("team"):
        who = "the team's queue" if owner == "queue" else (p.get("owner_name") or owner)
        console.print(
            f"owner {who} (team {p.get('team') or '—'}); SLA due "
            f"{(p.get('sla_due_at') or '—')[:16]}, first touch "
            f"{(p.get('first_touch_at') or 'none yet')[:16]}"
            + (f", {SLA_WORDS[p['sla_state']]}" if p.get("sla_state") else ""),
            highlight=False,
        )
    if p.get("why_not"):
        console.print(f"not an MQL: {p['why_not']}", highlight=False)
    for line in explain_lines(card):
        console.print(line, highlight=False)
    for note in detail.consent.get("notes", []):
        console.print(f"[bold]consent:[/] {escape(note)}", markup=True, highlight=False)
    if detail.history:
        console.print("stage history", style="bold")
        for h in detail.history:
            console.print(
                f"  {h['changed_at'][:19]}  {h['from_stage'] or '-':>12} → {h['to_stage']:<12} "
                f"{h['reason']} by {h['actor']}"
                + (f" [{h['definition_version']}]" if h.get("definition_version") else ""),
                highlight=False,
            )
    if history:
        _print_timeline(timeline)


def _print_timeline(timeline: list[dict[str, Any]]) -> None:
    console.print("score timeline", style="bold")
    if not timeline:
        console.print("  no score snapshots yet", highlight=False)
    for entry in timeline:
        moved = ", ".join(
            f"{rule} {points:+,.1f}" for rule, points in entry["rules_changed"].items()
        )
        names = sorted({e["name"] for e in entry["events"]})
        console.print(
            f"  {entry['as_of'][:16]}  total {entry['total']:>7,.1f} "
            f"(fit {entry['fit']:,.1f}, intent {entry['intent']:,.1f})"
            + (" MQL" if entry["qualifies"] else "")
            + (f"; {moved}" if moved else "")
            + (f"; {entry['events_count']} event(s): {', '.join(names)}" if names else "")
            + (f"; {', '.join(entry['stage_changes'])}" if entry["stage_changes"] else ""),
            highlight=False,
        )


@app.command()
@handle_errors
def demo(
    persons: Annotated[int, typer.Option(min=50, help="How many persons to simulate.")] = 5000,
    days: Annotated[int, typer.Option(min=7, help="How many days of history.")] = 180,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same data).")] = 7,
) -> None:
    """Generate a synthetic B2B history, run it through the engine, print the funnel."""
    import time

    from mqlengine.demo.run import (
        database_is_empty,
        is_demo_database,
        reset_database,
        run_demo,
    )

    eng = wiring()
    if not database_is_empty(eng):
        if not is_demo_database(eng.db):
            fail(
                f"{eng.db.url} already holds data that is not a previous demo; "
                "point --database (or MQL_DATABASE_URL) at an empty database for the demo"
            )
        reset_database(eng)
    started = time.perf_counter()
    with _progress() as bar:
        task = bar.add_task("simulating days", total=days)
        report = run_demo(
            eng,
            now=_now(),
            persons_count=persons,
            days=days,
            seed=seed,
            progress=lambda _kind, done, total: bar.update(task, completed=done, total=total),
        )
    elapsed = time.perf_counter() - started
    _print_summary(eng)
    _print_handoff(eng, report.feedback, report.breaches)
    console.print(
        f"demo: {report.messages:,} messages for {report.persons:,} persons in {elapsed:.1f} s "
        f"(generate {report.seconds.get('generate', 0):.1f} s, "
        f"ingest {report.seconds.get('ingest', 0):.1f} s, "
        f"rescore {report.seconds.get('rescore', 0):.1f} s) into {eng.db.url}",
        highlight=False,
    )
    console.print(
        "next: [bold]mql leads --stage mql[/], [bold]mql explain ID[/], "
        "[bold]mql report funnel[/], [bold]MQL_READ_KEYS=R mql serve --write-key K[/] "
        "(log in to the dashboard at / with R)",
        markup=True,
    )


def _print_handoff(eng: object, feedback: int, breaches: int) -> None:
    """Who got the demo's MQLs: owners and queues, SLA breaches, sales feedback."""
    from mqlengine.demo.run import first_assignments

    rows = first_assignments(eng.db)  # type: ignore[attr-defined]
    table = Table(title="Who got the MQLs (first assignment)")
    table.add_column("rep or queue")
    table.add_column("team")
    table.add_column("MQLs", justify="right")
    for name, team, n in rows:
        table.add_row(name or "(queue)", team, f"{n:,}")
    console.print(table)
    console.print(f"sales feedback applied: {feedback:,}; SLA breaches recorded: {breaches:,}")


def _print_summary(eng: object) -> None:
    from mqlengine.services.summary import funnel_summary

    with eng.db.read() as connection:  # type: ignore[attr-defined]
        summary = funnel_summary(connection)
    stages = Table(title="Funnel")
    stages.add_column("stage")
    stages.add_column("now", justify="right")
    stages.add_column("ever reached", justify="right")
    for stage in (
        "lead",
        "mql",
        "sal",
        "sql",
        "opportunity",
        "customer",
        "nurture",
        "disqualified",
    ):
        stages.add_row(
            stage, f"{summary.stages.get(stage, 0):,}", f"{summary.reached.get(stage, 0):,}"
        )
    console.print(stages)
    types = Table(title=f"MQLs by type ({summary.ever_mql:,} persons ever MQL)")
    types.add_column("type")
    types.add_column("persons", justify="right")
    for name, n in sorted(summary.mql_by_type.items(), key=lambda kv: -kv[1]):
        types.add_row(name, f"{n:,}")
    console.print(types)
    # the same units as `mql report channels`: leads, leads that became MQL, their ratio
    channels = Table(title="Leads and leads that became MQL, by channel")
    for column in ("channel", "leads", "became MQL", "MQL rate"):
        channels.add_column(column, justify="left" if column == "channel" else "right")
    for row in summary.mql_by_channel:
        channels.add_row(
            row["channel"],
            f"{row['leads']:,}",
            f"{row['mqls']:,}",
            "—" if row["mql_rate"] is None else f"{row['mql_rate']:.1%}",
        )
    console.print(channels)


from mqlengine.cli import serve as _serve  # noqa: E402

_serve.register(app)

from mqlengine.cli import handoff as _handoff  # noqa: E402

_handoff.register(app)

from mqlengine.cli import report as _report  # noqa: E402

_report.register(app)

from mqlengine.cli import db as _db  # noqa: E402

_db.register(app)

from mqlengine.cli import access as _access  # noqa: E402

_access.register(app)

from mqlengine.cli import privacy as _privacy  # noqa: E402

_privacy.register(app)

from mqlengine.cli import model as _model  # noqa: E402

_model.register(app)

from mqlengine.cli import desk as _desk  # noqa: E402

_desk.register(app)
from mqlengine.cli import backtest as _backtest  # noqa: E402
from mqlengine.cli import definition as _definition  # noqa: E402

_definition.register(app)
_backtest.register(app)
from mqlengine.cli import score as _score  # noqa: E402

_score.register(app)


def main() -> None:
    from mqlengine.cli.options import build_only_named
    from mqlengine.logmask import install

    install()  # personal data and keys never reach a log line
    build_only_named(app, sys.argv[1:])
    app()

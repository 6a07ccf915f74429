"""CLI of the handoff: reps and teams, routing simulation, the worker, the outbox, feedback
and CRM outcome imports. Thin commands over :mod:`mqlengine.services`."""

from __future__ import annotations

import signal
import sys
import threading
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.table import Table

from mqlengine.cli.access import audit_cli
from mqlengine.cli.common import console, err_console, escape, fail, handle_errors, wiring
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

reps_app = typer.Typer(
    help="Sales reps and teams that routing chooses from.", no_args_is_help=False
)
route_app = typer.Typer(help="Routing tools.", no_args_is_help=True)
outbox_app = typer.Typer(help="Notifications waiting, delivered or dead (the outbox).")


def _hours(values: list[str] | None) -> dict[str, list[str]] | None:
    """``--hours weekdays=09:00-17:00 --hours sat=10:00-12:00``."""
    if not values:
        return None
    result: dict[str, list[str]] = {}
    for value in values:
        day, _, span = value.partition("=")
        if not span:
            fail(f"--hours {value!r}: use DAY=HH:MM-HH:MM (DAY: mon…sun, weekdays, every_day)", 2)
        result.setdefault(day.strip(), []).extend(s.strip() for s in span.split(","))
    return result


def _json(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2, default=str).decode() + "\n")


# --- reps ------------------------------------------------------------------------------------


@reps_app.callback(invoke_without_command=True)
@handle_errors
def reps_list(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
) -> None:
    """List reps with today's load and availability (subcommands change them)."""
    if ctx.invoked_subcommand is not None:
        return
    from mqlengine.services.reps import list_reps

    eng = wiring(create=False)
    with eng.db.read() as connection:
        rows = list_reps(connection, now=_now())
    if as_json:
        _json(rows)
        return
    table = Table(title="Reps")
    for column in ("rep", "team", "tz", "capacity", "today", "open", "status", "territories"):
        table.add_column(column)
    for r in rows:
        status = "available" if r["available"] else r["unavailable_because"]
        if r["available"] and not r["on_shift"]:
            status = "off shift"
        table.add_row(
            r["key"],
            r["team"] or "",
            r["timezone"],
            str(r["capacity_per_day"] or "∞"),
            str(r["assigned_today"]),
            str(r["open_mqls"]),
            status,
            ",".join(r["territories"]),
        )
    console.print(table)


@reps_app.command("set")
@handle_errors
def reps_set(
    key: Annotated[str, typer.Argument(help="Rep handle, e.g. ana.k")],
    team: Annotated[str | None, typer.Option(help="Team (created when new).")] = None,
    name: Annotated[str | None, typer.Option()] = None,
    email: Annotated[str | None, typer.Option()] = None,
    tz: Annotated[
        str | None, typer.Option("--tz", help="IANA time zone, e.g. Europe/Berlin.")
    ] = None,
    capacity: Annotated[int | None, typer.Option(min=0, help="MQLs per day.")] = None,
    hours: Annotated[
        list[str] | None,
        typer.Option("--hours", help="Working hours DAY=HH:MM-HH:MM (repeatable)."),
    ] = None,
    territory: Annotated[
        list[str] | None, typer.Option("--territory", help="Country code or region (repeatable).")
    ] = None,
    active: Annotated[bool | None, typer.Option("--active/--inactive")] = None,
) -> None:
    """Create a rep (needs --team) or change some of its fields."""
    from mqlengine.services.reps import upsert_rep

    eng = wiring()
    with eng.db.begin() as connection:
        row = upsert_rep(
            connection,
            key,
            now=_now(),
            team=team,
            name=name,
            email=email,
            timezone=tz,
            capacity_per_day=capacity,
            working_hours=_hours(hours),
            territories=territory,
            active=active,
        )
        audit_cli(connection, "rep.put", key, {"team": team, "name": name, "active": active})
    console.print(
        f"rep [bold]{escape(row['key'])}[/] in team {escape(row['team'])} "
        f"({escape(row['timezone'])})",
        markup=True,
        highlight=False,
    )


@reps_app.command("away")
@handle_errors
def reps_away(
    key: Annotated[str, typer.Argument()],
    start: Annotated[str, typer.Option("--from", help="ISO time the absence starts.")],
    until: Annotated[str, typer.Option("--until", help="ISO time the rep is back.")],
    note: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Record an out-of-office period (routing skips the rep meanwhile)."""
    from mqlengine.services.reps import add_absence

    starts, ends = _when(start, "--from"), _when(until, "--until")
    assert starts is not None and ends is not None
    eng = wiring()
    with eng.db.begin() as connection:
        add_absence(connection, key, starts_at=starts, ends_at=ends, note=note)
        window = {"starts_at": starts.isoformat(), "ends_at": ends.isoformat(), "note": note}
        audit_cli(connection, "rep.absence", key, window)
    console.print(
        f"{key} is away from {starts:%Y-%m-%d %H:%M} to {ends:%Y-%m-%d %H:%M} UTC", highlight=False
    )


@reps_app.command("team")
@handle_errors
def reps_team(
    name: Annotated[str, typer.Argument()],
    manager_name: Annotated[str | None, typer.Option("--manager")] = None,
    manager_email: Annotated[str | None, typer.Option("--manager-email")] = None,
) -> None:
    """Create or update a team (its manager is notified of SLA breaches)."""
    from mqlengine.services.reps import upsert_team

    eng = wiring()
    with eng.db.begin() as connection:
        upsert_team(
            connection, name, now=_now(), manager_name=manager_name, manager_email=manager_email
        )
        audit_cli(connection, "team.put", name, {"manager_email": manager_email})
    console.print(f"team [bold]{escape(name)}[/]", markup=True, highlight=False)


@reps_app.command("teams")
@handle_errors
def reps_teams() -> None:
    """List teams."""
    from mqlengine.services.reps import list_teams

    eng = wiring(create=False)
    with eng.db.read() as connection:
        rows = list_teams(connection)
    table = Table(title="Teams")
    for column in ("team", "manager", "manager email", "reps"):
        table.add_column(column)
    for r in rows:
        table.add_row(r["name"], r["manager_name"] or "", r["manager_email"] or "", str(r["reps"]))
    console.print(table)


# --- route simulate --------------------------------------------------------------------------


@route_app.command("simulate")
@handle_errors
def route_simulate(
    days: Annotated[int, typer.Option(min=1, help="Replay the MQLs of the last N days.")] = 30,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Replay recent MQLs through today's rules and reps: load per rep and fairness."""
    from mqlengine.services.reps import simulate

    eng = wiring(create=False)
    definition = eng.definition().definition
    now = _now()
    with eng.db.read() as connection:
        result = simulate(connection, definition, since=now - timedelta(days=days), now=now)
    if as_json:
        _json(result)
        return
    table = Table(title=f"Routing simulation: {result['mqls']} MQLs of the last {days} days")
    for column in ("rep", "team", "MQLs", "per day", "capacity/day", "share"):
        table.add_column(column, justify="left" if column in ("rep", "team") else "right")
    for r in result["reps"]:
        table.add_row(
            r["rep"],
            r["team"],
            str(r["mqls"]),
            f"{r['per_day']:.1f}",
            str(r["capacity_per_day"] or "∞"),
            f"{r['share']:.1%}",
        )
    console.print(table)
    teams = ", ".join(f"{k} {v:.3f}" for k, v in result["team_fairness"].items())
    console.print(
        f"queued (no rep available or no rule): {result['queued']}; "
        f"fairness (Jain, capacity-weighted; 1 = even): {result['fairness']:.3f} overall; {teams}",
        highlight=False,
    )


# --- worker ----------------------------------------------------------------------------------

DEFAULT_LEASE_SECONDS = 5.0


@handle_errors
def worker(
    once: Annotated[
        bool, typer.Option(help="Deliver what is due and check SLAs once, then exit.")
    ] = False,
    poll: Annotated[float, typer.Option(min=0.01, help="Seconds between polls while idle.")] = 0.2,
    sla_every: Annotated[float, typer.Option(min=0.1, help="Seconds between SLA checks.")] = 30.0,
    concurrency: Annotated[int, typer.Option(min=1, help="Parallel deliveries.")] = 8,
    max_attempts: Annotated[int, typer.Option(min=1, help="Attempts before a row is dead.")] = 8,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds per delivery attempt.")] = 10.0,
    base_url: Annotated[
        str | None, typer.Option(help="Public URL for person links (default $MQL_PUBLIC_URL).")
    ] = None,
    lease: Annotated[
        float,
        typer.Option(
            min=0.5,
            help="Seconds a claimed row stays leased; renewed every third of it while the "
            "worker delivers, so a dead worker's rows go to another within about this long.",
        ),
    ] = DEFAULT_LEASE_SECONDS,
    limit: Annotated[
        int,
        typer.Option(
            min=1,
            help="Rows claimed per pass (a worker killed mid-pass may send at most these again).",
        ),
    ] = 50,
    quiet: Annotated[
        bool,
        typer.Option("--quiet", "-q", help="No line per delivery, retry and dead letter."),
    ] = False,
) -> None:
    """Deliver outbox notifications (webhooks, Slack, e-mail) and escalate SLA breaches;
    logs one line per delivery, retry and dead letter on stderr."""
    import logging

    from mqlengine.notify.senders import SendOptions
    from mqlengine.notify.worker import run_worker

    eng = wiring(create=False)
    eng.definition()
    stop = threading.Event()

    def _stop(_signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    options = SendOptions(
        base_url=base_url or eng.settings.public_url,
        timeout=timeout,
        box=eng.secret_box(),
    )
    from mqlengine.store.admin import safe_url

    err_console.print(f"worker: delivering from {safe_url(eng.db.url)}", highlight=False)
    from mqlengine.logmask import MaskFilter

    # one line per delivery, retry and dead letter (notify/relay.py logs them once recorded)
    outbox_log = logging.getLogger("mqlengine.outbox")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s worker: %(message)s"))
    handler.addFilter(MaskFilter())  # e-mails and keys never reach the line
    if not quiet:
        outbox_log.addHandler(handler)
        outbox_log.setLevel(logging.INFO)
        outbox_log.propagate = False
    try:
        stats = run_worker(
            eng.db,
            lambda: eng.definition().definition,
            clock=eng.clock,
            stop=stop,
            once=once,
            poll=poll,
            sla_every=sla_every,
            options=options,
            concurrency=concurrency,
            max_attempts=max_attempts,
            lease=timedelta(seconds=lease),
            limit=limit,
        )
    finally:
        outbox_log.removeHandler(handler)
    console.print(
        f"worker: {stats.relay.delivered} delivered, {stats.relay.retried} to retry, "
        f"{stats.relay.dead} dead, {stats.breaches} SLA breaches",
        highlight=False,
    )


# --- outbox ----------------------------------------------------------------------------------


@outbox_app.callback(invoke_without_command=True)
@handle_errors
def outbox_list(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help="pending, delivered or dead.")] = None,
    topic: Annotated[str | None, typer.Option()] = None,
    person: Annotated[int | None, typer.Option(help="Only this person's messages.")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List outbox messages, newest first (subcommands: replay, destinations, add-destination)."""
    if ctx.invoked_subcommand is not None:
        return
    from mqlengine.services import outbox

    eng = wiring(create=False)
    with eng.db.read() as connection:
        rows = outbox.list_outbox(
            connection, status=status, topic=topic, person_id=person, limit=limit
        )
        totals = outbox.counts(connection)
    if as_json:
        _json(rows)
        return
    table = Table(title="Outbox")
    for column in (
        "id",
        "message id",
        "topic",
        "person",
        "destination",
        "status",
        "attempts",
        "next / delivered",
        "last error",
    ):
        table.add_column(column)
    for r in rows:
        when = r["delivered_at"] if r["status"] == "delivered" else r["next_attempt_at"]
        table.add_row(
            str(r["id"]),
            r["message_id"],
            r["topic"],
            str(r["person_id"] or ""),
            r["destination"],
            r["status"],
            str(r["attempts"]),
            f"{when:%Y-%m-%d %H:%M:%S}" if when else "",
            (r["last_error"] or "")[:60],
        )
    console.print(table)
    console.print(
        ", ".join(f"{k}: {v}" for k, v in sorted(totals.items())) or "empty", highlight=False
    )


@outbox_app.command("replay")
@handle_errors
def outbox_replay(
    ids: Annotated[list[str] | None, typer.Argument(help="Row ids or message ids (msg_…).")] = None,
    dead: Annotated[bool, typer.Option("--dead", help="Replay every dead letter.")] = False,
) -> None:
    """Deliver messages again, with their original ids (receivers dedupe on them)."""
    from mqlengine.services import outbox

    numbers = [int(i) for i in ids or [] if i.isdigit()]
    message_ids = [i for i in ids or [] if not i.isdigit()]
    eng = wiring(create=False)
    with eng.db.begin() as connection:
        n = outbox.replay(connection, now=_now(), ids=numbers, message_ids=message_ids, dead=dead)
    console.print(f"{n} message(s) queued for delivery again", highlight=False)


@outbox_app.command("destinations")
@handle_errors
def outbox_destinations() -> None:
    """List notification destinations."""
    from mqlengine.services import outbox
    from mqlengine.store.secretbox import mask_url

    eng = wiring(create=False)
    with eng.db.read() as connection:
        rows = outbox.list_destinations(connection)
    box = eng.secret_box()
    table = Table(title="Destinations")
    for column in ("name", "kind", "url", "topics", "to", "signed", "active"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r["name"],
            r["kind"],
            mask_url(box.reveal(r["url"]) if box.configured else r["url"]),
            ",".join(r["topics"] or []) or "all",
            ",".join(r["email_to"] or []),
            "yes" if r["secret"] else "",
            "yes" if r["active"] else "no",
        )
    console.print(table)


@outbox_app.command("add-destination")
@handle_errors
def outbox_add_destination(
    name: Annotated[str, typer.Argument()],
    kind: Annotated[str, typer.Option(help="webhook, slack or email.")],
    url: Annotated[str, typer.Option(help="https://… or smtp://user:pass@host:port?from=…")],
    secret: Annotated[
        str | None, typer.Option(help="Webhook signing secret (whsec_…); 'generate' makes one.")
    ] = None,
    topic: Annotated[
        list[str] | None, typer.Option("--topic", help="Only these topics (repeatable).")
    ] = None,
    to: Annotated[
        list[str] | None, typer.Option("--to", help="E-mail recipients: address, owner or manager.")
    ] = None,
) -> None:
    """Add (or replace) a destination; new outbox rows are written for it from now on."""
    from mqlengine.notify.signing import generate_secret
    from mqlengine.services import outbox

    if secret == "generate":
        secret = generate_secret()
        console.print(f"signing secret: [bold]{escape(secret)}[/]", markup=True, highlight=False)
    eng = wiring()
    with eng.db.begin() as connection:
        outbox.add_destination(
            connection,
            name=name,
            kind=kind,
            url=url,
            now=_now(),
            box=eng.secret_box(),
            secret=secret,
            topics=topic or [],
            email_to=to or [],
        )
        audit_cli(connection, "destination.add", name, {"kind": kind, "topics": topic or []})
    console.print(
        f"destination [bold]{escape(name)}[/] ({escape(kind)})", markup=True, highlight=False
    )


@outbox_app.command("remove-destination")
@handle_errors
def outbox_remove_destination(name: Annotated[str, typer.Argument()]) -> None:
    """Deactivate a destination (its pending rows stay; replay or let them die)."""
    from mqlengine.services import outbox

    eng = wiring(create=False)
    with eng.db.begin() as connection:
        outbox.remove_destination(connection, name)
        audit_cli(connection, "destination.remove", name, None)
    console.print(f"destination {name} deactivated")


# --- feedback and outcomes -------------------------------------------------------------------


@handle_errors
def feedback(
    person: Annotated[
        str,
        typer.Argument(
            metavar="PERSON",
            help="Person id, an e-mail address, or kind:value (user_id:…, anonymous_id:…, "
            "phone:+…, external_id:…), as `mql explain` takes.",
        ),
    ],
    action: Annotated[
        str,
        typer.Argument(
            help="touch, accept, reject, recycle, disqualify, convert, won, lost, reopen."
        ),
    ],
    reason: Annotated[
        str | None,
        typer.Option(help="Reason code (required for reject, recycle, disqualify, lost)."),
    ] = None,
    amount: Annotated[
        float | None, typer.Option(min=0, help="convert: pipeline amount; won: revenue.")
    ] = None,
    actor: Annotated[str, typer.Option(help="Who did it.")] = "cli",
    at: Annotated[
        str | None, typer.Option(help="When it happened (ISO time; default now).")
    ] = None,
) -> None:
    """Record sales feedback on a lead (lands in stage history with actor and time)."""
    from mqlengine.services.feedback import apply_feedback
    from mqlengine.services.leads import resolve_person_ref

    eng = wiring(create=False)
    definition = eng.definition().definition
    now = _now()
    moment = _when(at, "--at") or now
    with eng.db.begin() as connection:
        person_id = resolve_person_ref(
            connection, person, gmail_normalize=definition.identity.gmail_normalize
        )
        change = apply_feedback(
            connection,
            definition,
            person_id,
            action,
            actor=actor,
            at=moment,
            now=now,
            reason=reason,
            amount=amount,
        )
        details = {"actor": actor, "reason": reason, "amount": amount, "at": moment.isoformat()}
        audit_cli(connection, f"feedback.{action}", f"person:{person_id}", details)
    if change is None:
        console.print(f"person {person_id}: {action} recorded", highlight=False)
    else:
        console.print(
            f"person {person_id}: {change.from_stage.value} → "
            f"[bold]{change.to_stage.value}[/] ({escape(change.reason)})",
            markup=True,
            highlight=False,
        )


@handle_errors
def import_outcomes(
    file: Annotated[Path, typer.Argument(help="CSV export from the CRM.")],
    mapping: Annotated[
        list[str] | None,
        typer.Option(
            "--map",
            help="target=Column (email, user_id, external_id, person_id, status, reason, "
            "amount, date, actor).",
        ),
    ] = None,
    actor: Annotated[str, typer.Option(help="Actor when the file names none.")] = "crm-import",
    lost_reason: Annotated[
        str | None,
        typer.Option("--lost-reason", help="Reason code of a lost deal whose row names none."),
    ] = None,
    delimiter: DelimiterOpt = None,
    encoding: EncodingOpt = None,
    decimal: DecimalOpt = ".",
    tz: FileTzOpt = "UTC",
    strict: StrictOpt = False,
    show: Annotated[int, typer.Option(help="How many problems to list.")] = 20,
) -> None:
    """Apply outcomes from a HubSpot/Salesforce (or any mapped) CSV export as feedback."""
    from mqlengine.ingest.importer import parse_mapping
    from mqlengine.services.outcomes import import_outcomes as run

    if not file.exists():
        fail(f"{file}: no such file", 2)
    columns = parse_mapping(mapping or [])
    options = csv_options(delimiter, encoding, decimal, tz, strict)
    eng = wiring(create=False)
    report = run(
        eng.db,
        eng.definition().definition,
        file,
        now=_now(),
        mapping=columns,
        default_actor=actor,
        options=options,
        lost_reason=lost_reason,
    )
    print_ignored(report.columns)
    done = ", ".join(f"{k} {v}" for k, v in sorted(report.actions.items())) or "nothing"
    console.print(
        f"{report.rows} rows: {report.applied} applied ({done}), {report.skipped} unchanged, "
        f"{report.rejected} rejected",
        highlight=False,
    )
    print_problems(file, report.problems, show)
    if report.rejected and not report.applied:
        raise typer.Exit(4)


def register(app: typer.Typer) -> None:
    app.add_typer(reps_app, name="reps")
    app.add_typer(route_app, name="route")
    app.add_typer(outbox_app, name="outbox")
    app.command("worker")(worker)
    app.command("feedback")(feedback)
    app.command("import-outcomes")(import_outcomes)

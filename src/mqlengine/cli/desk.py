"""The sales desk from the command line: ``mql correct`` (manual corrections),
``mql review sample|mark|report`` (the weekly review) and ``mql report corrections``."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import orjson
import typer
from rich.table import Table

from mqlengine.cli.access import cli_actor
from mqlengine.cli.common import console, handle_errors, now, parse_when, wiring

PERSON_HELP = "Person id, an e-mail address, or kind:value (user_id:…, external_id:…)."
review_app = typer.Typer(
    help="The weekly review: sample last week's MQLs, mark each call, report wrong calls.",
    no_args_is_help=True,
)


def _person(ref: str) -> int:
    from mqlengine.services.leads import resolve_person_ref

    eng = wiring(create=False)
    gmail = eng.definition().definition.identity.gmail_normalize
    with eng.db.read() as connection:
        return resolve_person_ref(connection, ref, gmail_normalize=gmail)


@handle_errors
def correct_command(
    person: Annotated[str, typer.Argument(metavar="PERSON", help=PERSON_HELP)],
    stage: Annotated[
        str | None, typer.Option("--stage", help="The stage to put the lead in.")
    ] = None,
    score: Annotated[float | None, typer.Option("--score", help="The score to set.")] = None,
    reason: Annotated[
        str, typer.Option("--reason", help="Why (required): kept in the stage history.")
    ] = "",
) -> None:
    """Override a lead's stage or score, with a reason: recorded in the stage history as a
    manual change and in the audit log (actor cli:<user>)."""
    from mqlengine.errors import ValidationError
    from mqlengine.services.corrections import correct

    if (stage is None) == (score is None):
        raise ValidationError("give exactly one of --stage or --score")
    eng = wiring(create=False)
    person_id = _person(person)
    definition = eng.definition().definition
    with eng.db.begin() as connection:
        done = correct(
            connection,
            definition,
            person_id,
            kind="stage" if stage is not None else "score",
            value=stage if stage is not None else repr(score),
            reason=reason,
            actor=cli_actor(),
            key_id=None,
            now=eng.clock(),
        )
    console.print(
        f"person {done['person_id']}: {done['kind']} {done['from']} → {done['to']} "
        f"({done['reason']})",
        highlight=False,
    )


@handle_errors
def report_corrections(
    since: Annotated[str | None, typer.Option(help="From (ISO); default 12 weeks ago.")] = None,
    until: Annotated[str | None, typer.Option(help="Until, exclusive (ISO); default now.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Manual corrections (score, stage) and routing corrections (reassignments) per week."""
    from mqlengine.services.corrections import corrections_report, week_of

    eng = wiring(create=False)
    end = parse_when(until, "--until") or eng.clock()
    start = parse_when(since, "--since") or week_of(end) - timedelta(days=7 * 11)
    with eng.db.read() as connection:
        data = corrections_report(connection, since=start, until=end)
    if as_json:
        console.print_json(orjson.dumps(data).decode())
        return
    table = Table("week", "score", "stage", "manual", "reassignments")
    for w in data["weeks"]:
        table.add_row(
            w["week"], str(w["score"]), str(w["stage"]), str(w["manual"]), str(w["reassignments"])
        )
    console.print(table)


@review_app.command("sample")
@handle_errors
def review_sample(
    n: Annotated[int, typer.Option("--n", help="How many MQLs to sample.")] = 10,
    team: Annotated[str | None, typer.Option("--team", help="Only this team's MQLs.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Random seed (repeatable).")] = None,
    week: Annotated[
        str | None, typer.Option("--week", help="A date in the week (default: last week).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Draw and store a stratified sample of a week's MQLs (accepted, rejected, recycled,
    not yet touched) with the score card that made each an MQL."""
    from mqlengine.services.review import draw_sample, parse_week

    eng = wiring(create=False)
    moment = now()
    with eng.db.begin() as connection:
        sample = draw_sample(
            connection,
            week_start=parse_week(week, now=moment),
            n=n,
            team=team,
            seed=seed,
            actor=cli_actor(),
            now=moment,
        )
    if as_json:
        console.print_json(orjson.dumps(sample).decode())
        return
    console.print(
        f"sample {sample['id']}: week of {sample['week']}, {sample['size']} MQL(s), "
        f"seed {sample['seed']} (available: "
        + ", ".join(f"{k} {v}" for k, v in sample["available"].items())
        + ")",
        highlight=False,
    )
    table = Table("person", "stratum", "MQL at", "stage", "total", "type")
    for item in sample["items"]:
        card = item["score_card"] or {}
        table.add_row(
            str(item["person_id"]),
            item["stratum"],
            item["mql_at"][:16],
            item["stage"],
            f"{card.get('total', 0):.1f}" if card else "—",
            str(card.get("mql_type") or ""),
        )
    console.print(table)
    console.print(
        f"mark each: mql review mark {sample['id']} PERSON right|wrong --note …", highlight=False
    )


@review_app.command("mark")
@handle_errors
def review_mark(
    sample: Annotated[int, typer.Argument(help="The sample's id.")],
    person: Annotated[int, typer.Argument(help="The person's id in the sample.")],
    verdict: Annotated[str, typer.Argument(help="right or wrong.")],
    note: Annotated[str | None, typer.Option("--note", help="Why (required for wrong).")] = None,
) -> None:
    """Mark one sampled MQL as the right or the wrong call."""
    from mqlengine.services.review import mark

    eng = wiring(create=False)
    with eng.db.begin() as connection:
        done = mark(
            connection, sample, person, verdict=verdict, note=note, actor=cli_actor(), now=now()
        )
    console.print(f"sample {sample}, person {person}: {done['verdict']} call", highlight=False)


@review_app.command("report")
@handle_errors
def review_report_command(
    weeks: Annotated[int, typer.Option(help="How many weeks back.")] = 12,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The share of wrong calls among the marked sample items, per week."""
    from mqlengine.services.review import review_report

    if not 1 <= weeks <= 520:
        from mqlengine.errors import ValidationError

        raise ValidationError("--weeks must be between 1 and 520")
    eng = wiring(create=False)
    with eng.db.read() as connection:
        data = review_report(connection, weeks=weeks, now=now())
    if as_json:
        console.print_json(orjson.dumps(data).decode())
        return
    table = Table("week", "items", "marked", "wrong", "share wrong")
    notes: list[str] = []
    for w in data["weeks"]:
        share = "—" if w["wrong_share"] is None else f"{w['wrong_share'] * 100:.1f} %"
        table.add_row(w["week"], str(w["items"]), str(w["marked"]), str(w["wrong"]), share)
        notes += [f"{w['week']}: {why}" for why in w["notes"].values()]
    console.print(table)
    for line in notes:
        console.print(f"— {line}", style="dim", highlight=False)


def register(app: typer.Typer) -> None:
    from mqlengine.cli.report import report_app

    app.command("correct")(correct_command)
    app.add_typer(review_app, name="review")
    report_app.command("corrections")(report_corrections)

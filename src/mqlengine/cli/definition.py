"""`mql definition apply|list|show|diff|rollback`: change the definition with a preview,
keep every version, and go back to one."""

from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich import box
from rich.table import Table

from mqlengine.cli.access import cli_actor
from mqlengine.cli.common import console, err_console, escape, fail, handle_errors, now, wiring

if TYPE_CHECKING:
    from mqlengine.definition.compiler import LoadedDefinition
    from mqlengine.wiring import Wiring

definition_app = typer.Typer(
    help="Definition versions: apply a file (tested, previewed), list, show, diff, roll back.",
    no_args_is_help=True,
)

YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def confirm(question: str, yes: bool) -> None:
    """Ask on a terminal; without one, refuse unless ``--yes`` was given."""
    if yes:
        return
    if not sys.stdin.isatty():
        fail(f"{question} — no terminal to ask on: pass --yes to confirm", 2)
    typer.confirm(question, abort=True)


def resolve(eng: Wiring, name: str) -> LoadedDefinition:
    """A definition named on the command line: ``live``, a file, or a stored version."""
    from mqlengine.definition.compiler import load_definition
    from mqlengine.errors import NotFoundError
    from mqlengine.services import definitions

    with eng.db.read() as connection:
        if name == "live":
            current = definitions.live(connection)
            if current is None:
                raise NotFoundError("no live definition version is stored yet")
            return current
        if Path(name).is_file():
            return load_definition(Path(name))
        return definitions.stored(connection, name)


def print_changes(changes: list[dict[str, Any]]) -> None:
    from mqlengine.services.definitions import describe_change

    if not changes:
        console.print("no rule, gate or threshold changes", highlight=False)
    for change in changes:
        console.print(f"  {describe_change(change)}", highlight=False)


@definition_app.command("apply")
@handle_errors
def apply(
    file: Annotated[Path, typer.Argument(help="The definition file to make live.")],
    message: Annotated[
        str | None, typer.Option("--message", "-m", help="Why it changes (kept with it).")
    ] = None,
    author: Annotated[
        str | None, typer.Option(help="Who applies it (default: the OS user).")
    ] = None,
    days: Annotated[int, typer.Option(min=1, help="Backtest over the last N days.")] = 90,
    engine: Annotated[str, typer.Option(help="Batch engine for the preview.")] = "python",
    yes: YesOpt = False,
) -> None:
    """Validate FILE, run its tests, preview what changes (backtest and the leads whose
    stage would flip now), then store it as a new version and make it live."""
    from mqlengine.batch.backtest import (
        backtest,
        default_window,
        engine_named,
        stage_flips_now,
    )
    from mqlengine.cli.backtest import print_report
    from mqlengine.definition.compiler import load_definition
    from mqlengine.services import definitions

    loaded = load_definition(file)
    for warning in loaded.warnings:
        err_console.print(warning, style="yellow", highlight=False, soft_wrap=True)
    moment = now()
    results = definitions.run_definition_tests(loaded, moment)
    definitions.require_passing(loaded, results)
    if results:
        console.print(
            f"[green]ok[/] {len(results)} definition test(s) pass", markup=True, highlight=False
        )
    else:
        err_console.print(
            f"warning: {loaded.filename} has no tests: add a `tests:` section",
            style="yellow",
            highlight=False,
        )
    eng = wiring()
    with eng.db.read() as connection:
        definitions.check_storable(connection, loaded)
        current = definitions.live(connection)
    chosen = engine_named(engine)
    if current is None:
        console.print("no live version is stored: nothing to compare with", highlight=False)
    elif current.definition.content_hash != loaded.definition.content_hash:
        start, end = default_window(moment, days)
        console.rule(f"what changes: {current.definition.version} → {loaded.definition.version}")
        with eng.db.read() as connection:
            before = definitions.stored(connection, current.definition.version)
        print_changes(definitions.diff(before, loaded).changes)
        report = backtest(
            eng.db, current.definition, loaded.definition, start=start, end=end, engine=chosen
        )
        print_report(report, examples=5)
        flips = stage_flips_now(
            eng.db, current.definition, loaded.definition, now=moment, engine=chosen
        )
        print_flips(flips)
    confirm(f"apply {loaded.definition.version} and make it live?", yes)
    with eng.db.begin() as connection:
        done = definitions.apply_version(
            connection,
            loaded,
            author=author or os_user(),
            message=message,
            now=moment,
            actor=cli_actor(),
        )
    console.print(
        f"[green]applied[/] {escape(str(done['version']))} "
        f"(was {escape(str(done['previous'] or 'none'))}); "
        "stages change when you run [bold]mql score[/]",
        markup=True,
        highlight=False,
    )


def print_flips(flips: dict[str, Any]) -> None:
    moves = ", ".join(f"{k} {v}" for k, v in flips["moves"].items()) or "none"
    console.print(
        f"leads whose stage would change now: {flips['count']} of {flips['persons']} ({moves})",
        highlight=False,
    )
    if flips["examples"]:
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
        for column in ("person", "stage", "live →", "candidate →", "total", "why"):
            table.add_column(column, justify="right" if column in ("person", "total") else "left")
        for row in flips["examples"]:
            table.add_row(
                str(row["person_id"]),
                row["stage"],
                row["live"],
                row["candidate"],
                f"{row['total']:.1f}",
                row["why"],
            )
        console.print(table)


@definition_app.command("list")
@handle_errors
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Stored versions, newest first; the live one marked."""
    from mqlengine.services.definitions import list_versions

    eng = wiring(create=False)
    with eng.db.read() as connection:
        rows = list_versions(connection)
    if as_json:
        sys.stdout.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("version", "live", "author", "stored", "applied", "message"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r["version"],
            "live" if r["live"] else "",
            r["author"] or "",
            r["created_at"].isoformat(timespec="minutes"),
            r["applied_at"].isoformat(timespec="minutes") if r["applied_at"] else "",
            r["message"] or "",
        )
    console.print(table)


@definition_app.command("show")
@handle_errors
def show(version: Annotated[str, typer.Argument(help="A stored version.")]) -> None:
    """A stored version's YAML (on stdout) and who stored it when (on stderr)."""
    from mqlengine.services.definitions import show_version

    eng = wiring(create=False)
    with eng.db.read() as connection:
        row = show_version(connection, version)
    err_console.print(
        f"# {row['version']}{' (live)' if row['live'] else ''}, stored "
        f"{row['created_at'].isoformat(timespec='minutes')}"
        + (f" by {row['author']}" if row["author"] else "")
        + (f": {row['message']}" if row["message"] else ""),
        highlight=False,
    )
    sys.stdout.write(row["content"] if row["content"].endswith("\n") else row["content"] + "\n")


@definition_app.command("diff")
@handle_errors
def diff(
    before: Annotated[str, typer.Argument(help="A stored version, a file, or `live`.")],
    after: Annotated[str, typer.Argument(help="A stored version, a file, or `live`.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """What changed from BEFORE to AFTER: the rules and thresholds, then the YAML."""
    from mqlengine.services.definitions import diff as diff_definitions

    eng = wiring(create=False)
    result = diff_definitions(resolve(eng, before), resolve(eng, after))
    if as_json:
        sys.stdout.write(orjson.dumps(result.as_dict(), option=orjson.OPT_INDENT_2).decode())
        sys.stdout.write("\n")
        return
    console.print(f"{result.before} → {result.after}", style="bold", highlight=False)
    print_changes(result.changes)
    console.print()
    sys.stdout.flush()
    sys.stdout.write(result.unified or "(the files are identical)\n")


@definition_app.command("rollback")
@handle_errors
def rollback(
    version: Annotated[str, typer.Argument(help="The stored version to make live again.")],
    yes: YesOpt = False,
) -> None:
    """Make a stored version live again (stages change on the next `mql score`)."""
    from mqlengine.services import definitions

    eng = wiring()
    with eng.db.read() as connection:
        definitions.stored(connection, version)
    confirm(f"make {version} live again?", yes)
    with eng.db.begin() as connection:
        done = definitions.rollback(connection, version, actor=cli_actor(), now=now())
    console.print(
        f"[green]rolled back[/] to {escape(str(done['version']))} "
        f"(was {escape(str(done['previous'] or 'none'))}); "
        "stages change when you run [bold]mql score[/]",
        markup=True,
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.add_typer(definition_app, name="definition")

"""`mql db upgrade|current|check`: the schema of the store, on SQLite and PostgreSQL."""

from __future__ import annotations

import sys

import orjson
import typer

from mqlengine.cli.common import console, err_console, escape, fail, handle_errors, wiring

db_app = typer.Typer(
    help="The store's schema: migrate, show, check; its columnar copy.", no_args_is_help=True
)


@db_app.command("upgrade")
@handle_errors
def upgrade() -> None:
    """Create the database if needed and apply every pending migration."""
    from mqlengine.store.admin import safe_url, schema_state

    eng = wiring(create=True, migrate=True)
    state = schema_state(eng.db)
    console.print(
        f"{safe_url(eng.db.url)}: at {', '.join(state.current)} (newest)", highlight=False
    )


@db_app.command("current")
@handle_errors
def current(
    as_json: bool = typer.Option(False, "--json", help="One JSON object instead of text."),
) -> None:
    """The revision the database is at, and whether migrations are pending."""
    from mqlengine.store.admin import safe_url, schema_state

    eng = wiring(create=False, migrate=False)
    state = schema_state(eng.db)
    if as_json:
        data = {
            "database": safe_url(eng.db.url),
            "current": list(state.current),
            "heads": list(state.heads),
            "up_to_date": state.up_to_date,
        }
        sys.stdout.write(orjson.dumps(data).decode() + "\n")
        return
    at = ", ".join(state.current) or "(empty: no migration applied)"
    pending = "" if state.up_to_date else f"; pending: upgrade to {', '.join(state.heads)}"
    console.print(f"{safe_url(eng.db.url)}: at {at}{pending}", highlight=False)


@db_app.command("check")
@handle_errors
def check() -> None:
    """Fail (exit 1) when the database's schema differs from what this version expects."""
    from mqlengine.store.admin import safe_url, schema_state

    eng = wiring(create=False, migrate=False)
    state = schema_state(eng.db)
    url = safe_url(eng.db.url)
    if not state.up_to_date:
        fail(
            f"{url}: at {', '.join(state.current) or '(empty)'}, expected "
            f"{', '.join(state.heads)}: run `mql db upgrade`",
            1,
        )
    if state.differences:
        for difference in state.differences:
            err_console.print(f"  {difference}", highlight=False)
        fail(f"{url}: the schema differs from the code in {len(state.differences)} place(s)", 1)
    if state.orphans:
        for orphan in state.orphans:
            err_console.print(f"  {orphan}", highlight=False)
        fail(f"{url}: rows refer to persons that do not exist", 1)
    console.print(
        f"[green]ok[/] {escape(url)}: schema at {escape(', '.join(state.heads))}",
        markup=True,
        highlight=False,
    )


@db_app.command("columnar")
@handle_errors
def columnar(
    rebuild: bool = typer.Option(
        False, "--rebuild", help="Build the copy again from scratch (corrupted, or reshaped)."
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON object instead of text."),
) -> None:
    """Bring the columnar copy the reports read up to date (incrementally), or rebuild it."""
    from mqlengine.reports.data import refresh_columnar
    from mqlengine.store.columnar_config import columnar_path

    eng = wiring(create=False, migrate=False)
    path = columnar_path(eng.db)
    stats = refresh_columnar(eng.db, rebuild=rebuild)
    if path is None or stats is None:
        fail("this store has no columnar copy: set MQL_COLUMNAR_PATH to give it one", 8)
        return
    if as_json:
        sys.stdout.write(orjson.dumps({"path": str(path), **stats.as_dict()}).decode() + "\n")
        return
    what = "rebuilt" if stats.rebuilt else ("refreshed" if stats.changed else "up to date")
    console.print(
        f"{path}: {what} in {stats.seconds:.2f} s ({stats.new_events:,} new events, "
        f"{stats.dirty_persons:,} changed persons, {stats.erased_persons:,} erased)",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")

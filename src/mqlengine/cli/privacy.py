"""`mql erase PERSON` and `mql export PERSON`: privacy requests, over the facade."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import orjson
import typer

from mqlengine.cli.access import audit_cli, cli_actor
from mqlengine.cli.common import console, handle_errors, wiring

PERSON_HELP = (
    "Person id, an e-mail address, or kind:value with kind user_id, anonymous_id, email, "
    "phone or external_id."
)


@handle_errors
def erase(
    person: Annotated[str, typer.Argument(metavar="PERSON", help=PERSON_HELP)],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Erase a person: their data leaves every table; an audit record without personal
    data stays. MQL_AFTER_ERASURE=suppress also drops their later events."""
    from mqlengine.facade import MqlEngine

    engine = MqlEngine(wiring(create=False))
    if not yes:
        typer.confirm(f"erase person {person} and everything held on them?", abort=True)
    record = engine.erase(person, actor=cli_actor())
    with engine.wiring.db.begin() as connection:
        audit_cli(connection, "person.erase", f"erasure:{record['erasure_id']}", None)
    removed = ", ".join(f"{table} {n}" for table, n in record["counts"].items() if n)
    console.print(
        f"erased (erasure {record['erasure_id']}): {removed or 'nothing else held'}"
        + (
            f"; {record['suppressed_identifiers']} identifier(s) suppressed"
            if record["after"] == "suppress"
            else ""
        ),
        highlight=False,
    )


@handle_errors
def export(
    person: Annotated[str, typer.Argument(metavar="PERSON", help=PERSON_HELP)],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file (mode 0600).")
    ] = None,
) -> None:
    """Everything held on a person as JSON (an access request): profile, identities,
    events, stage history with score cards, assignments, notifications, merges."""
    from mqlengine.facade import MqlEngine

    engine = MqlEngine(wiring(create=False))
    data = engine.export(person)
    with engine.wiring.db.begin() as connection:
        audit_cli(connection, "person.export", f"person:{data['person']['id']}", None)
    text = orjson.dumps(data, option=orjson.OPT_INDENT_2, default=str)
    if output is None:
        sys.stdout.write(text.decode() + "\n")
        return
    output.touch(mode=0o600, exist_ok=True)
    output.write_bytes(text + b"\n")
    console.print(f"wrote {output}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("erase")(erase)
    app.command("export")(export)

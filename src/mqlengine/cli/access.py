"""`mql keys create|list|revoke` and `mql audit`: API keys with scopes, and who did what."""

from __future__ import annotations

import getpass
import re
import sys
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.table import Table

from mqlengine.cli.common import console, err_console, handle_errors, now, parse_when, wiring

if TYPE_CHECKING:
    from sqlalchemy import Connection

keys_app = typer.Typer(
    help="API keys: create (the secret is shown once), list, revoke.", no_args_is_help=True
)
DURATION = re.compile(r"^\s*(\d+)\s*([hdw])\s*$")
UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}


def cli_actor() -> str:
    """Who acts from the command line, as the audit log names them (``cli:<user>``)."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def audit_cli(
    connection: Connection,
    action: str,
    target: str | None,
    details: dict[str, Any] | None,
    at: datetime | None = None,
) -> None:
    """Record an admin or feedback command in the audit log (actor ``cli:<user>``)."""
    from mqlengine.services.audit import record_audit

    record_audit(
        connection,
        actor=cli_actor(),
        key_id=None,
        action=action,
        target=target,
        details=details,
        at=now() if at is None else at,
    )


def _expiry(value: str | None, now: datetime) -> datetime | None:
    """``--expires``: a duration (``90d``, ``12h``, ``2w``) or an ISO time."""
    if value is None:
        return None
    match = DURATION.match(value)
    if match:
        return now + int(match.group(1)) * UNITS[match.group(2)]
    return parse_when(value, "--expires")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()[:19]
    return str(value)


@keys_app.command("create")
@handle_errors
def create(
    scope: Annotated[
        list[str],
        typer.Option(
            "--scope",
            help="write (ingest only), read (reports, persons, dashboard), feedback (sales "
            "actions) or admin (reps, teams, keys, audit; implies read and feedback). "
            "Repeatable or comma-separated.",
        ),
    ],
    name: Annotated[
        str | None, typer.Option(help="Who uses the key; the audit log and feedback show it.")
    ] = None,
    expires: Annotated[
        str | None, typer.Option(help="A duration (90d, 12h, 2w) or an ISO time.")
    ] = None,
    server_side: Annotated[
        bool,
        typer.Option(
            "--server-side",
            help="The key lives on a server, never in a web page (server-side-only mode "
            "accepts only such write keys).",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the key as JSON.")] = False,
) -> None:
    """Create a key. The key is printed once, on stdout; only its hash is stored."""
    from mqlengine.services.keys import KeyHasher, create_key

    eng = wiring()
    now = eng.clock()
    scopes = [s for value in scope for s in value.split(",")]
    with eng.db.begin() as connection:
        created = create_key(
            connection,
            KeyHasher(eng.settings.secret_key),
            scopes=scopes,
            now=now,
            name=name,
            expires_at=_expiry(expires, now),
            server_side=server_side,
        )
        audit_cli(
            connection,
            "key.create",
            created.key_id,
            {"name": created.name, "scopes": created.scopes, "server_side": server_side},
            at=now,
        )
    if as_json:
        data = {
            "key_id": created.key_id,
            "name": created.name,
            "scopes": created.scopes,
            "server_side": created.server_side,
            "expires_at": _text(created.expires_at) or None,
            "key": created.secret,
        }
        sys.stdout.write(orjson.dumps(data).decode() + "\n")
        return
    err_console.print(
        f"created key {created.key_id} ({created.name}; scopes {', '.join(created.scopes)}"
        + (f"; expires {_text(created.expires_at)}" if created.expires_at else "")
        + ("; server-side" if server_side else "")
        + "). It is shown only now:",
        highlight=False,
    )
    sys.stdout.write(created.secret + "\n")


@keys_app.command("list")
@handle_errors
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table.")] = False,
) -> None:
    """Stored keys with their scopes and status (never their secrets)."""
    from mqlengine.services.keys import list_keys

    eng = wiring(create=False)
    with eng.db.read() as connection:
        rows = list_keys(connection, now=eng.clock())
    if as_json:
        for row in rows:
            data = {k: (_text(v) or None) if isinstance(v, datetime) else v for k, v in row.items()}
            sys.stdout.write(orjson.dumps(data).decode() + "\n")
        return
    view = Table(title=f"{len(rows)} key(s)")
    for column in (
        "key id",
        "name",
        "scopes",
        "server-side",
        "status",
        "created",
        "expires",
        "last used",
    ):
        view.add_column(column)
    for row in rows:
        view.add_row(
            row["key_id"],
            row["name"],
            ", ".join(row["scopes"]),
            "yes" if row["server_side"] else "",
            row["status"],
            _text(row["created_at"]),
            _text(row["expires_at"]),
            _text(row["last_used_at"]),
        )
    console.print(view)


@keys_app.command("revoke")
@handle_errors
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key id (see `mql keys list`).")],
) -> None:
    """Revoke a key: running servers refuse it within seconds; its dashboard sessions end."""
    from mqlengine.services.keys import revoke_key

    eng = wiring(create=False)
    now = eng.clock()
    with eng.db.begin() as connection:
        row = revoke_key(connection, key_id.strip(), now=now)
        audit_cli(connection, "key.revoke", row["key_id"], {"name": row["name"]}, at=now)
    console.print(f"revoked key {row['key_id']} ({row['name']})", highlight=False)


def audit(
    limit: Annotated[int, typer.Option(min=1, help="At most this many entries.")] = 50,
    action: Annotated[str | None, typer.Option(help="Only this action (e.g. rep.put).")] = None,
    actor: Annotated[str | None, typer.Option(help="Only this actor (a key's name).")] = None,
    since: Annotated[str | None, typer.Option(help="Only entries at or after (ISO).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table.")] = False,
) -> None:
    """The audit log of admin and feedback actions, newest first."""
    from mqlengine.services.audit import list_audit

    moment = parse_when(since, "--since")
    eng = wiring(create=False)
    with eng.db.read() as connection:
        rows = list_audit(connection, limit=limit, action=action, actor=actor, since=moment)
    if as_json:
        for row in rows:
            sys.stdout.write(orjson.dumps(row).decode() + "\n")
        return
    view = Table(title="audit log, newest first")
    for column in ("id", "at", "actor", "key id", "action", "target", "address", "details"):
        view.add_column(column)
    for row in rows:
        view.add_row(
            str(row["id"]),
            row["at"][:19],
            row["actor"],
            row["key_id"] or "",
            row["action"],
            row["target"] or "",
            row["address"] or "",
            orjson.dumps(row["details"]).decode()[:120] if row["details"] else "",
        )
    console.print(view)


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
    app.command("audit")(handle_errors(audit))

"""`mql serve`, `mql quarantine`, `mql unmerge`: the real-time ingest's commands."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.table import Table

from mqlengine.cli.common import console, err_console, fail, handle_errors, json_row, wiring


def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port.")] = 8000,
    write_key: Annotated[
        list[str] | None,
        typer.Option(
            "--write-key",
            help="Accepted write key (repeatable); default: $MQL_WRITE_KEYS (comma-separated).",
        ),
    ] = None,
    firmographics: Annotated[
        Path | None,
        typer.Option(
            help="CSV of domain,company,industry,employees,country for enrichment "
            "(default: $MQL_FIRMOGRAPHICS_CSV)."
        ),
    ] = None,
    rate_limit: Annotated[
        float | None, typer.Option(hidden=True, help="Same as --rate-ingest-per-key.")
    ] = None,
    cors_origin: Annotated[
        list[str] | None,
        typer.Option(
            "--cors-origin",
            help="Origin (https://www.example.com) whose pages may send events from the "
            "browser (repeatable); default: $MQL_CORS_ORIGINS, none.",
        ),
    ] = None,
    trusted_proxy: Annotated[
        list[str] | None,
        typer.Option(
            "--trusted-proxy",
            help="Address or network of a proxy whose X-Forwarded-For is believed "
            "(repeatable, '*' for any); default: $MQL_TRUSTED_PROXIES, none.",
        ),
    ] = None,
    rate_ingest_per_key: Annotated[
        float | None, typer.Option(min=0, help="Events/s per write key (0: off; default 5000).")
    ] = None,
    rate_ingest_per_address: Annotated[
        float | None, typer.Option(min=0, help="Events/s per client address (default 2000).")
    ] = None,
    rate_read_per_key: Annotated[
        float | None, typer.Option(min=0, help="Read requests/s per key (default 50).")
    ] = None,
    rate_read_per_address: Annotated[
        float | None, typer.Option(min=0, help="Requests/s per client address (default 20).")
    ] = None,
    rate_auth_failures: Annotated[
        float | None,
        typer.Option(min=0, help="Failed authentications/s per client address (default 1)."),
    ] = None,
    header_timeout: Annotated[
        float | None,
        typer.Option(min=0.1, help="Seconds a client has to send a request's headers (10)."),
    ] = None,
    body_timeout: Annotated[
        float | None, typer.Option(min=0.1, help="Seconds a client has to send a body (10).")
    ] = None,
    server_side_only: Annotated[
        bool,
        typer.Option(
            "--server-side-only",
            help="Ingest only from keys marked server-side; no browser endpoints "
            "(default: $MQL_SERVER_SIDE_ONLY).",
        ),
    ] = False,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    access_log: Annotated[
        bool, typer.Option(help="Log every request (e-mails, phones and keys masked).")
    ] = True,
) -> None:
    """Run the HTTP API: Segment-compatible ingest, persons, accounts (docs at /docs).

    Rate limits, CORS origins, trusted proxies and timeouts default to the settings
    (``MQL_RATE_*``, ``MQL_CORS_ORIGINS``, ``MQL_TRUSTED_PROXIES``, ``MQL_*_TIMEOUT``)."""
    from uvicorn.config import LOGGING_CONFIG

    from mqlengine.api import server
    from mqlengine.api.app import create_app
    from mqlengine.cli.common import settings
    from mqlengine.logmask import uvicorn_log_config
    from mqlengine.store.admin import safe_url
    from mqlengine.wiring import Wiring

    chosen = settings()
    if firmographics is not None:
        chosen = replace(chosen, firmographics_csv=firmographics)
    if server_side_only:
        chosen = replace(chosen, server_side_only=True)
    given: dict[str, Any] = {
        "cors_origins": tuple(cors_origin) if cors_origin else None,
        "trusted_proxies": tuple(trusted_proxy) if trusted_proxy else None,
        "rate_ingest_per_key": rate_ingest_per_key if rate_limit is None else rate_limit,
        "rate_ingest_per_address": rate_ingest_per_address,
        "rate_read_per_key": rate_read_per_key,
        "rate_read_per_address": rate_read_per_address,
        "rate_auth_failures": rate_auth_failures,
        "header_timeout": header_timeout,
        "body_timeout": body_timeout,
    }
    web = replace(chosen.web, **{k: v for k, v in given.items() if v is not None})
    chosen = replace(chosen, web=web)
    eng = Wiring(chosen)
    keys = tuple(write_key or ()) or eng.settings.write_keys
    loaded = eng.definition()  # fail now, not on the first request
    app = create_app(eng, write_keys=keys, require_write_keys=True)
    err_console.print(
        f"mql serve: http://{host}:{port} (docs /docs), definition {loaded.definition.version}, "
        f"{len(keys)} write key(s) from the environment and those of `mql keys`, "
        f"database {safe_url(eng.db.url)}"
        + (", server-side only" if chosen.server_side_only else ""),
        highlight=False,
    )
    # e-mails, phones and keys are masked in every log line, access log included
    secrets = [*keys, *eng.settings.read_keys, eng.settings.secret_key or ""]
    log_config = uvicorn_log_config(LOGGING_CONFIG, [s for s in secrets if s])
    server.run(
        app,
        host=host,
        port=port,
        header_timeout=web.header_timeout,
        body_timeout=web.body_timeout,
        trusted_proxies=web.trusted_proxies,
        log_level=log_level,
        access_log=access_log,
        log_config=log_config,
    )


def quarantine(
    limit: Annotated[int, typer.Option(min=1, help="At most this many rows (newest first).")] = 20,
    show: Annotated[int | None, typer.Option(help="Print one row's full payload.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table.")] = False,
    purge: Annotated[
        bool, typer.Option(help="Delete the listed rows after showing them (e.g. once fixed).")
    ] = False,
) -> None:
    """Rejected payloads kept for inspection (bad JSON, invalid or oversized messages)."""
    from mqlengine.ingest.quarantine import purge as purge_rows
    from mqlengine.ingest.quarantine import quarantined, quarantined_row

    eng = wiring(create=False)
    if show is not None:
        with eng.db.read() as connection:
            row = quarantined_row(connection, show)
        if row is None:
            fail(f"no quarantined payload {show}", 5)
            return
        sys.stdout.write(orjson.dumps(json_row(row), option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    with eng.db.read() as connection:
        total, rows = quarantined(connection, limit=limit)
    if as_json:
        for row in rows:
            sys.stdout.write(orjson.dumps(json_row(row)).decode() + "\n")
    else:
        view = Table(title=f"quarantine: {total} payload(s), newest first")
        for column in ("id", "received", "endpoint", "code", "index", "messageId", "reason"):
            view.add_column(column, justify="right" if column in ("id", "index") else "left")
        for row in rows:
            view.add_row(
                str(row["id"]),
                row["received_at"].isoformat()[:19],
                row["endpoint"],
                row["code"],
                "" if row["message_index"] is None else str(row["message_index"]),
                row["message_id"] or "",
                (f"{row['field']}: " if row["field"] else "") + row["reason"][:120],
            )
        console.print(view)
    if purge and rows:
        with eng.db.begin() as connection:
            purge_rows(connection, [r["id"] for r in rows])
        err_console.print(f"purged {len(rows)} row(s)", highlight=False)


def unmerge(
    merge_id: Annotated[int | None, typer.Argument(help="The merge to undo (see --list).")] = None,
    list_: Annotated[bool, typer.Option("--list", help="List recent merges.")] = False,
    person: Annotated[int | None, typer.Option(help="With --list: merges of this person.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="With --list: at most this many.")] = 20,
) -> None:
    """Undo an identity merge: both persons get their own identities, events and scores."""
    from mqlengine.facade import MqlEngine
    from mqlengine.ingest.unmerge import list_merges

    eng = wiring(create=False)
    if list_ or merge_id is None:
        with eng.db.read() as connection:
            rows = list_merges(connection, person_id=person, limit=limit)
        view = Table(title="merges, newest first")
        for column in ("id", "survivor", "merged", "reason", "merged at", "undone at", "moved"):
            view.add_column(column)
        for r in rows:
            view.add_row(
                str(r["id"]),
                str(r["survivor_id"]),
                str(r["merged_id"]),
                r["reason"],
                r["merged_at"][:19],
                (r["undone_at"] or "")[:19],
                f"{r['identities']} identities, {r['events']} events",
            )
        console.print(view)
        return
    result = MqlEngine(eng).unmerge(merge_id)
    console.print(
        f"undid merge {result.merge_id}: person {result.merged_id} is separate from "
        f"{result.survivor_id} again ({result.identities_moved} identities, "
        f"{result.events_moved} events moved back); both rescored",
        highlight=False,
    )
    for change in result.to_dict()["stage_changes"]:
        console.print(
            f"  person {change['person_id']}: {change['from']} → {change['to']}", highlight=False
        )


def register(app: typer.Typer) -> None:
    app.command("serve")(handle_errors(serve))
    app.command("quarantine")(handle_errors(quarantine))
    app.command("unmerge")(handle_errors(unmerge))

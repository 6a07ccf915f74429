"""`mql score`: an explicit full rescore with a batch engine, written back in short
transactions, resumable after a kill (``--resume``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mqlengine.cli.common import console, err_console, fail, handle_errors, now, parse_when, wiring

if TYPE_CHECKING:
    from mqlengine.batch.engine import BatchEngine


@handle_errors
def score(
    as_of: Annotated[
        str | None, typer.Option(help="Score as of this ISO time (default: now).")
    ] = None,
    engine: Annotated[
        str,
        typer.Option(
            help="Batch engine: duckdb (compiled SQL), spark (PySpark) or python (the online "
            "scorer)."
        ),
    ] = "duckdb",
    notify: Annotated[
        bool,
        typer.Option(
            help="Send notifications for the stage changes found (default: they are "
            "recorded in the outbox as suppressed, never delivered)."
        ),
    ] = False,
    resume: Annotated[
        bool, typer.Option(help="Continue the unfinished run where it stopped.")
    ] = False,
    restart: Annotated[
        bool, typer.Option(help="Abandon an unfinished run and start a new one.")
    ] = False,
    events: Annotated[
        Path | None,
        typer.Option(
            help="Read events from this Parquet export (with --persons) instead of the store."
        ),
    ] = None,
    persons: Annotated[
        Path | None, typer.Option(help="Read persons from this Parquet export (with --events).")
    ] = None,
    chunk: Annotated[int, typer.Option(min=1, help="Persons scored per engine call.")] = 20_000,
    spark_master: Annotated[
        str | None,
        typer.Option(help="With --engine spark: local[N] (default local[*]) or spark://host:port."),
    ] = None,
    spark_remote: Annotated[
        str | None,
        typer.Option(help="With --engine spark: a Spark Connect server, sc://host:port."),
    ] = None,
    spark_conf: Annotated[
        list[str] | None,
        typer.Option(help="With --engine spark: a Spark setting KEY=VALUE (repeatable)."),
    ] = None,
) -> None:
    """Rescore every person with the definition in force and apply stage changes (e.g.
    nightly, so decay applies, or after a definition change)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from mqlengine.batch.engines import engine_by_name
    from mqlengine.batch.rescore import ChunkSource, FileSource, full_rescore

    if (events is None) != (persons is None):
        fail("--events and --persons go together (Parquet exports in the engines' schemas)", 2)
    if resume and as_of is not None:
        fail("--resume continues a run as of its own moment; leave out --as-of", 2)
    eng = wiring()
    loaded = eng.definition()
    moment = parse_when(as_of, "--as-of")
    source: ChunkSource | None = None
    if events is not None and persons is not None:
        source = FileSource(events, persons)
    batch_engine: BatchEngine
    if engine == "spark":
        from mqlengine.batch.sparkopts import spark_engine, spark_options

        batch_engine = spark_engine(spark_options(spark_master, spark_remote, spark_conf))
    elif spark_master or spark_remote or spark_conf:
        fail("--spark-master, --spark-remote and --spark-conf go with --engine spark", 2)
    else:
        batch_engine = engine_by_name(engine)
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        disable=not err_console.is_terminal,
    )
    with progress:
        task = progress.add_task(f"scoring ({engine})", total=None)
        report = full_rescore(
            eng.db,
            loaded.definition,
            engine=batch_engine,
            now=now(),
            as_of=moment,
            notify=notify,
            resume=resume,
            restart=restart,
            source=source,
            chunk_persons=chunk,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    resumed = f" (resumed after {report.resumed_from})" if report.resumed_from else ""
    console.print(
        f"scored {report.persons} persons{resumed} with {loaded.definition.version} on "
        f"{report.engine} as of {report.as_of.isoformat()}: {report.mqls_entered} became MQL, "
        f"{report.mqls_left} left MQL" + ("" if notify else " (notifications suppressed)"),
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.command("score")(score)

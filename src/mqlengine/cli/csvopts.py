"""Options every CSV import shares (delimiter, encoding, decimal mark, zone, strict
columns) and how an import's problems are printed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from mqlengine.cli.common import err_console
from mqlengine.ingest.csvread import Columns, CsvOptions, RowProblem

DelimiterOpt = Annotated[
    str | None,
    typer.Option("--delimiter", help="Field delimiter (',', ';', tab, '|'); default: detected."),
]
EncodingOpt = Annotated[
    str | None,
    typer.Option("--encoding", help="The file's encoding (e.g. latin-1); default: BOM or UTF-8."),
]
DecimalOpt = Annotated[
    str,
    typer.Option("--decimal", help="Decimal mark of numbers: '.' (default) or ','."),
]
FileTzOpt = Annotated[
    str,
    typer.Option("--tz", help="Zone of dates and times without an offset (e.g. Europe/Berlin)."),
]
StrictOpt = Annotated[
    bool, typer.Option("--strict", help="Columns that match no field are an error.")
]


def csv_options(
    delimiter: str | None, encoding: str | None, decimal: str, tz: str, strict: bool
) -> CsvOptions:
    return CsvOptions(delimiter=delimiter, encoding=encoding, decimal=decimal, tz=tz, strict=strict)


def print_ignored(columns: Columns | None) -> None:
    if columns is not None and columns.ignored:
        err_console.print(
            f"ignored column(s): {columns.describe_ignored()} "
            "(map them with --map FIELD=Column; --strict refuses them)",
            style="yellow",
            highlight=False,
            soft_wrap=True,
        )


def print_problems(file: Path, problems: Sequence[RowProblem], show: int = 20) -> None:
    for problem in problems[:show]:
        kind = "warning: " if problem.warning else ""
        err_console.print(
            f"{file}:{problem.row}: {kind}{problem.reason}",
            style="yellow",
            highlight=False,
            soft_wrap=True,
        )
    if len(problems) > show:
        err_console.print(f"… and {len(problems) - show} more", style="yellow")

"""Shared CLI plumbing: the engine from global options, error → red line + exit code."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from mqlengine.errors import DefinitionError, MqlError, exit_code_for
from mqlengine.logmask import mask

if TYPE_CHECKING:
    from rich.table import Table

    from mqlengine.settings import Settings
    from mqlengine.wiring import Wiring

# Markup is off: user and data text (e-mails, reasons, regexes, `[/]`) prints as it is.
# Styling is asked for explicitly (``markup=True`` on a line whose user parts are escaped
# with :func:`escape`, or a ``style=``).
console = Console(soft_wrap=True, markup=False)
err_console = Console(stderr=True, soft_wrap=True, markup=False)
__all__ = ["console", "err_console", "escape", "fail", "handle_errors", "json_row", "wiring"]
F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class CliState:
    database_url: str | None = None
    definition: Path | None = None
    wiring: Wiring | None = None  # built by the first command that asks for it


state = CliState()


def settings() -> Settings:
    """The environment's settings with the global options (``--database``, ``--definition``)
    in their place."""
    from mqlengine.settings import Settings

    chosen = Settings.from_env()
    if state.database_url:
        chosen = replace(chosen, database_url=state.database_url)
    if state.definition is not None:
        chosen = replace(chosen, definition_path=state.definition)
    return chosen


def wiring(*, create: bool = True, migrate: bool = True) -> Wiring:
    """The composition root for this command. Commands that only read pass
    ``create=False``: a mistyped ``--database`` is refused, not created empty."""
    from mqlengine.wiring import Wiring

    if state.wiring is None:
        state.wiring = Wiring(settings(), create=create, migrate=migrate)
        state.wiring.on_warning = _warn
    return state.wiring


def _warn(message: str) -> None:
    err_console.print(f"warning: {message}", style="yellow", highlight=False, soft_wrap=True)


def close_wiring() -> None:
    """Release the command's database connections (a command ends, its store closes)."""
    if state.wiring is not None:
        state.wiring.close()
        state.wiring = None


def now() -> datetime:
    """The engine's clock (``MQL_CLOCK`` freezes it)."""
    return wiring().clock() if state.wiring is not None else _clock()


def _clock() -> datetime:
    from mqlengine.wiring import frozen_clock, system_clock

    frozen = settings().frozen_now
    return frozen_clock(frozen)() if frozen is not None else system_clock()


def parse_when(value: str | None, option: str) -> datetime | None:
    """An ISO time from a command-line option; a bad one is a clear error naming the option."""
    if value is None:
        return None
    from mqlengine.ingest.messages import MessageError, parse_time

    try:
        return parse_time(value, option)
    except MessageError as error:
        fail(f"{option}: {error.reason}", 2)
    return None


def fail(message: str, code: int = 1) -> None:
    err_console.print(
        f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False, soft_wrap=True
    )
    raise typer.Exit(code)


def fitted_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    numeric: set[str],
    whole: set[str],
    flexible: dict[str, int | None],
) -> Table:
    """A table that fits the terminal (80 columns too) without folding a word: numbers
    and ``whole`` columns keep their full width, ``flexible`` ones (at most their given
    width) are cut with "…" when space runs out. A number is never cut."""
    from rich import box
    from rich.table import Table

    longest = {
        header: max([len(header), *(len(row[index]) for row in rows)])
        for index, header in enumerate(headers)
    }
    widths = {
        h: longest[h] if h not in flexible else min(longest[h], flexible[h] or longest[h])
        for h in headers
    }
    budget = console.width - 3 * (len(headers) - 1)  # padding and divider between columns
    while sum(widths.values()) > budget:
        widest = max((h for h in flexible if widths[h] > 6), key=widths.__getitem__, default=None)
        if widest is None:
            break  # the numbers and whole words alone are wider than the terminal
        widths[widest] -= 1
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for header in headers:
        table.add_column(
            header,
            justify="right" if header in numeric else "left",
            no_wrap=True,
            overflow="ellipsis",
            width=widths[header],
        )
    for row in rows:
        table.add_row(*row)
    return table


def json_row(row: Any) -> dict[str, Any]:
    """A database row as a JSON-ready dict: plain ``str`` keys (SQLAlchemy's are
    ``quoted_name``, which orjson refuses) and times as ISO 8601."""
    return {
        str(key): (value.isoformat() if hasattr(value, "isoformat") else value)
        for key, value in row.items()
    }


def handle_errors(func: F) -> F:
    """Turn the project's errors into one red line (plus diagnostics) and an exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except DefinitionError as error:
            for line in error.diagnostics:
                err_console.print(line, style="red", highlight=False, soft_wrap=True)
            fail(error.message, exit_code_for(error))
        except MqlError as error:
            fail(error.message, exit_code_for(error))
        except OSError as error:  # a file the user named: missing, unreadable, a directory
            fail(str(error), 2)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as error:
            if settings().debug:
                raise
            fail(
                f"unexpected {type(error).__name__}: {mask(str(error))} "
                "(a bug: set MQL_DEBUG=1 to see where, and report it)",
                70,
            )
        finally:
            close_wiring()
        return None

    return wrapper  # type: ignore[return-value]

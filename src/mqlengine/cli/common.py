"""Shared CLI plumbing: the engine from global options, error → red line + exit code."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.console import Console

from mqlengine.errors import DefinitionError, MqlError, exit_code_for
from mqlengine.logmask import mask

if TYPE_CHECKING:
    from mqlengine.settings import Settings
    from mqlengine.wiring import Wiring

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)
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
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


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

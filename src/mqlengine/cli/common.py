"""Shared CLI plumbing: the engine from global options, error → red line + exit code."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console

from mqlengine.errors import DefinitionError, MqlError, exit_code_for

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)
F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class CliState:
    database_url: str | None = None
    definition: Path | None = None


state = CliState()


def engine() -> Any:
    from mqlengine.engine import Engine
    from mqlengine.settings import Settings

    settings = Settings.from_env()
    if state.database_url:
        settings = Settings(state.database_url, settings.definition_path, settings.write_keys)
    if state.definition is not None:
        settings = Settings(settings.database_url, state.definition, settings.write_keys)
    return Engine(settings)


def now() -> datetime:
    from mqlengine.engine import utcnow

    return utcnow()


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
        except (OSError, ValueError) as error:
            if os.environ.get("MQL_DEBUG"):
                raise
            fail(str(error), 2)
        return None

    return wrapper  # type: ignore[return-value]

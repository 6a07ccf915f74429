"""How the `mql` command line reads its arguments: global options anywhere, clean help.

- ``--database``/``-d`` and ``--definition`` belong to the root command, but the README
  promises them on every command: ``mql leads --database URL`` works like ``mql --database
  URL leads``. :class:`GlobalOptionsGroup` moves them in front of the subcommand before
  Click parses anything (never past ``--``, never the value of another option).
- An option's bad value is described by :mod:`mqlengine.domain.wording`, like the
  definition file's and the API's.
- Typer's Rich help prints a value type for flags (``--help <bool>``, ``--force <bool>``);
  a flag takes no value, so :func:`fix_flag_help` shows none.
"""

from __future__ import annotations

from typing import Any

import typer
from typer import _click
from typer.core import TyperGroup, TyperOption

GLOBAL_WITH_VALUE = ("--database", "-d", "--definition")


def hoist_global_options(args: list[str]) -> list[str]:
    """``args`` with the global options (and their values) moved to the front."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        token = args[i]
        if token == "--":
            rest.extend(args[i:])
            break
        if token in GLOBAL_WITH_VALUE and i + 1 < len(args):
            front.extend(args[i : i + 2])
            i += 2
            continue
        if token.startswith(("--database=", "--definition=")):
            front.append(token)
        else:
            rest.append(token)
        i += 1
    return front + rest


def reword(error: typer.BadParameter) -> None:
    """An option's value that Typer checked with pydantic: say what is wrong in the
    engine's words ("expected a whole number, got 'x'"), not pydantic's."""
    cause = error.__cause__
    problems = getattr(cause, "errors", None)
    if cause is None or not callable(problems):
        return
    from mqlengine.domain.wording import explain_invalid

    found = problems()
    if found:
        error.message = explain_invalid(found[0])


class GlobalOptionsGroup(TyperGroup):
    """The root group: global options are read wherever they stand on the line, and
    option values are judged in the engine's words."""

    def parse_args(self, ctx: _click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoist_global_options(list(args)))

    def invoke(self, ctx: _click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except typer.BadParameter as error:
            reword(error)
            raise


_display_type_rich = TyperOption.display_type_rich


def _flag_display_type(self: TyperOption, ctx: _click.Context) -> str | None:
    if self.is_flag and not self.count:
        return None  # a flag takes no value: no type to show
    return _display_type_rich(self, ctx)


def fix_flag_help() -> None:
    TyperOption.display_type_rich = _flag_display_type  # type: ignore[method-assign]

"""How the `mql` command line reads its arguments: global options anywhere, clean help.

- ``--database``/``-d`` and ``--definition`` belong to the root command, but the README
  promises them on every command: ``mql leads --database URL`` works like ``mql --database
  URL leads``. :class:`GlobalOptionsGroup` moves them in front of the subcommand before
  Click parses anything (never past ``--``, never the value of another option).
- An option's bad value is described by :mod:`mqlengine.domain.wording`, like the
  definition file's and the API's.
- Typer's Rich help prints a value type for flags (``--help <bool>``, ``--force <bool>``);
  a flag takes no value, so :func:`fix_flag_help` shows none.
- Before it runs a command, Typer turns the signature of every command into Click
  parameters (a tenth of a second for the ~65 commands): when the line names one,
  :func:`build_only_named` leaves the others out of that run.
- Typer checks every parameter's value with a pydantic adapter, built on first use:
  importing pydantic and building the adapters cost a short command a tenth of a second.
  A value that needs no checking (an option not given, a default of its own type, a
  string for a string) is passed through as pydantic would return it
  (:func:`fix_flag_help` installs that too).
"""

from __future__ import annotations

import enum
from types import NoneType, UnionType
from typing import Any, Union, get_args, get_origin

import typer
from typer import _click
from typer.core import TyperGroup, TyperOption, _TyperParameter
from typer.main import get_command_name

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


def _command_word(args: list[str]) -> str | None:
    """The command a command line names (after the global options), or None (root
    options such as ``--help``, or no command)."""
    i = 0
    tokens = hoist_global_options(args)
    while i < len(tokens):
        token = tokens[i]
        if token in GLOBAL_WITH_VALUE:
            i += 2
        elif token.startswith(("--database=", "--definition=")):
            i += 1
        elif token.startswith("-"):
            return None
        else:
            return token
    return None


def _registered_name(info: Any) -> str | None:
    name = getattr(info, "name", None)
    if isinstance(name, str):
        return name
    callback = getattr(info, "callback", None)
    return get_command_name(callback.__name__) if callback is not None else None


def build_only_named(app: typer.Typer, args: list[str]) -> None:
    """Keep in ``app`` only the command or group ``args`` names, when exactly one has that
    name (otherwise nothing changes: the root's help and its "no such command" list every
    command). For a process that runs one command line (``mql``'s entry point)."""
    word = _command_word(args)
    if word is None:
        return
    commands = [c for c in app.registered_commands if _registered_name(c) == word]
    groups = [g for g in app.registered_groups if _registered_name(g) == word]
    if len(commands) + len(groups) == 1:
        app.registered_commands = commands
        app.registered_groups = groups


_process_value = _TyperParameter.process_value
# Types whose own instances typer's adapters return unchanged (paths are checked for
# existence and the like, so they always go through).
_PLAIN = (str, int, float)


def _plain_type(annotation: Any) -> type | None:
    """The one class of ``X`` or ``X | None`` when it is a plain scalar or an enum."""
    if get_origin(annotation) in (Union, UnionType):
        rest = [a for a in get_args(annotation) if a is not NoneType]
        if len(rest) != 1:
            return None
        annotation = rest[0]
    if not isinstance(annotation, type) or annotation is bool:
        return None
    if annotation in _PLAIN or issubclass(annotation, enum.Enum):
        return annotation
    return None


def _needs_no_check(param: _TyperParameter, value: Any) -> bool:
    if param.multiple or param.nargs != 1:
        return False
    if value is None:  # typer's coercion returns None for a missing single value
        return True
    info = param.type_descriptor.parameter_info
    if info.parser is not None or info.min is not None or info.max is not None:
        return False  # parsed by the command's own parser, or a range is checked
    plain = _plain_type(param.type_descriptor.annotation)
    if plain is None or (plain is float and isinstance(value, bool)):
        return False
    # exactly the type (a str for an int option is parsed; an enum's value is looked up)
    return type(value) is plain or (issubclass(plain, enum.Enum) and isinstance(value, plain))


def _quick_process_value(self: _TyperParameter, ctx: _click.Context, value: Any) -> Any:
    """Typer's ``process_value``, without the adapter where it would return the value."""
    if not _needs_no_check(self, value):
        return _process_value(self, ctx, value)
    if self.required and self.value_is_missing(value):
        raise _click.exceptions.MissingParameter(ctx=ctx, param=self)
    if self.callback is not None:
        value = self.callback(ctx, self, value)
    return value


def fix_flag_help() -> None:
    TyperOption.display_type_rich = _flag_display_type  # type: ignore[method-assign]
    _TyperParameter.process_value = _quick_process_value  # type: ignore[method-assign]

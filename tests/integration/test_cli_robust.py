"""The command line never shows a traceback, whatever the user types.

Every command (walked from the Typer app, so a new one is covered without editing this
file) runs with ``--help``, with markup-like text in every argument and option, and with
markup-like text in one option at a time; none may end in an exception or exit 70 (the
"unexpected error" code). Then the cases that used to crash, one by one.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from mqlengine.cli.app import app
from mqlengine.cli.options import hoist_global_options

runner = CliRunner()
MARKUP = "[/x]"
# never run for real with made-up options: they serve or loop until stopped, or build a demo
LONG_RUNNING = {("serve",), ("worker",), ("demo",)}


def _commands() -> Iterator[tuple[tuple[str, ...], Any]]:
    root = typer.main.get_command(app)

    def walk(command: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
        subcommands = getattr(command, "commands", None)
        if path:
            yield path, command
        for name, sub in (subcommands or {}).items():
            yield from walk(sub, (*path, name))

    yield from walk(root, ())


COMMANDS = list(_commands())


def _value_options(command: Any) -> list[str]:
    return [
        p.opts[0]
        for p in command.params
        if p.param_type_name == "option" and not getattr(p, "is_flag", False)
    ]


def _arguments(command: Any) -> list[str]:
    return [MARKUP for p in command.params if p.param_type_name == "argument"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("robust")
    database = f"sqlite:///{path / 'robust.db'}"
    for args in (["init", str(path / "mql.yaml")], ["--database", database, "db", "upgrade"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    return path


@pytest.fixture
def env(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("MQL_DATABASE_URL", f"sqlite:///{workdir / 'robust.db'}")
    monkeypatch.delenv("MQL_DEFINITION", raising=False)
    monkeypatch.delenv("MQL_DEBUG", raising=False)
    return workdir


def _no_crash(args: list[str]) -> Any:
    result = runner.invoke(app, args)
    shown = f"mql {' '.join(args)} → {result.exit_code}\n{result.output}"
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{shown}\n{result.exception!r}"
    )
    assert "Traceback" not in result.output, shown
    assert result.exit_code != 70, shown  # 70: an unexpected error, i.e. a bug
    return result


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=" ".join)
def test_help_of_every_command(env: Path, path: tuple[str, ...]) -> None:
    result = _no_crash([*path, "--help"])
    assert result.exit_code == 0
    assert "<bool>" not in result.output  # a flag takes no value


@pytest.mark.parametrize(
    ("path", "command"), [(p, c) for p, c in COMMANDS if not hasattr(c, "commands")], ids=str
)
def test_markup_everywhere_never_crashes(env: Path, path: tuple[str, ...], command: Any) -> None:
    everything = [*path, *_arguments(command)]
    for option in _value_options(command):
        everything += [option, MARKUP]
    _no_crash(everything)
    if path in LONG_RUNNING:
        return
    if _arguments(command):
        _no_crash([*path, *_arguments(command)])
    for option in _value_options(command):
        _no_crash([*path, *_arguments(command), option, MARKUP])


def test_global_options_stand_anywhere(env: Path) -> None:
    missing = f"sqlite:///{env / 'missing.db'}"
    for args in (
        ["leads", "--database", missing],
        ["leads", f"--database={missing}"],
        ["report", "funnel", "-d", missing],
        ["--database", missing, "leads"],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 8, (args, result.output)
        assert "missing.db" in result.output
    assert hoist_global_options(["leads", "--", "--database", "x"]) == [
        "leads",
        "--",
        "--database",
        "x",
    ]


def test_option_values_are_judged_in_the_engines_words(env: Path) -> None:
    result = runner.invoke(app, ["leads", "--limit", "many"])
    assert result.exit_code == 2
    assert "expected a whole number, got 'many'" in result.output
    assert "pydantic" not in result.output and "Input should be" not in result.output


def test_markup_in_user_text_prints_as_written(env: Path) -> None:
    result = runner.invoke(app, ["explain", "user_id:[/]"])
    assert result.exit_code == 5 and "user_id '[/]'" in result.output
    result = runner.invoke(app, ["leads", "--stage", "[/x]"])
    assert result.exit_code == 4 and "'[/x]'" in result.output


def test_import_with_markup_in_a_value(env: Path) -> None:
    csv = env / "markup.csv"
    csv.write_text(
        "event,timestamp,email,title\nSignup,[/b],a@northwind.io,[bold]CEO[/]\n"
        "Signup,2026-11-01T10:00:00Z,ok@northwind.io,[/i]\n",
        encoding="utf-8",
    )
    result = _no_crash(["import", str(csv), "--kind", "events", "--map", "event=event"])
    assert "[/b]" in result.output and "1 loaded" in result.output


def test_definition_messages_with_brackets(env: Path) -> None:
    text = (env / "mql.yaml").read_text()
    bad = env / "brackets.yaml"
    rules = (
        "  rules:\n"
        "    - id: markup_rule\n      when: {trait: title, regex: '[/x]('}\n      points: 5\n"
        "    - id: between_rule\n      when: {trait: employees, between: [9, 1]}\n      points: 5\n"
    )
    bad.write_text(text.replace("  rules:\n", rules, 1), encoding="utf-8")
    result = _no_crash(["validate", str(bad)])
    assert result.exit_code == 3
    assert "'[/x]('" in result.output
    assert "between needs [low, high]" in result.output


def test_quarantine_show_and_json(env: Path) -> None:
    from mqlengine.ingest.quarantine import body_row, insert_rows
    from mqlengine.store.db import Database

    database = Database(f"sqlite:///{env / 'robust.db'}")
    try:
        with database.begin() as connection:
            insert_rows(
                connection,
                [
                    body_row(
                        "/v1/batch",
                        "invalid_json",
                        "not JSON [/x]",
                        b"{[/b]",
                        received_at=datetime(2026, 11, 1, tzinfo=UTC),
                    )
                ],
            )
    finally:
        database.dispose()
    result = _no_crash(["quarantine", "--json"])
    assert result.exit_code == 0
    row = json.loads(result.output.splitlines()[0])
    assert row["reason"] == "not JSON [/x]" and row["received_at"].startswith("2026-11-01")
    result = _no_crash(["quarantine", "--show", str(row["id"])])
    assert result.exit_code == 0 and json.loads(result.output)["payload"] == "{[/b]"
    result = _no_crash(["quarantine"])
    assert result.exit_code == 0 and "[/x]" in result.output


def test_no_traceback_from_the_real_entry_point(env: Path) -> None:
    """The installed command, not CliRunner: what a user's terminal shows."""
    for args in (
        ["explain", "user_id:[/]"],
        ["leads", "--limit", "[/x]"],
        ["feedback", "[/]", "x"],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "mqlengine", *args],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=env,
        )
        assert "Traceback" not in done.stderr + done.stdout, done.stderr
        assert done.returncode not in (0, 1, 70), (args, done.returncode, done.stderr)

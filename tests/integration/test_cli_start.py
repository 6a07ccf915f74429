"""Simple commands start without the heavy libraries: `mql --help`, `mql report funnel` and
`mql leads` on an empty store, and the "no database" error, each run as a real process
under ``python -X importtime``, whose report names every module the process imported.
Checked by what is imported, never by timing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = (
    "duckdb",
    "pyarrow",
    "pandas",
    "numpy",
    "lightgbm",
    "sklearn",
    "fastapi",
    "uvicorn",
    "alembic",
    "jinja2",
    "pyspark",
)


def _run(folder: Path, *args: str) -> tuple[int, str, set[str]]:
    """Exit code, standard output and the modules ``mql ARGS`` imported, run in ``folder``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MQL_")}
    env["COLUMNS"] = "200"
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "mqlengine", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    modules = {
        line.rsplit("|", 1)[1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    return done.returncode, done.stdout, modules


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("empty")
    code, out, _ = _run(folder, "db", "upgrade")
    assert code == 0, out
    return folder


def test_help_imports_no_heavy_library(tmp_path: Path) -> None:
    code, out, modules = _run(tmp_path, "--help")
    assert code == 0 and "report" in out
    assert "mqlengine.cli.app" in modules  # the report lists what was imported
    assert not _heavy(modules), _heavy(modules)


def test_funnel_of_an_empty_store_imports_no_heavy_library(empty_store: Path) -> None:
    code, out, modules = _run(empty_store, "report", "funnel", "--format", "json")
    assert code == 0, out
    assert '"new_leads": 0' in out and '"mqls": 0' in out
    assert "mqlengine.reports.metrics" in modules  # the same report code ran
    assert not _heavy(modules), _heavy(modules)
    # the empty store was answered without building its columnar copy
    assert not list(empty_store.glob("*.duckdb"))


def test_leads_of_an_empty_store_imports_no_heavy_library(empty_store: Path) -> None:
    code, out, modules = _run(empty_store, "leads", "--format", "json")
    assert code == 0, out
    assert out.strip() == "[]"
    assert not _heavy(modules), _heavy(modules)


def test_no_database_error_imports_no_heavy_library(tmp_path: Path) -> None:
    code, _, modules = _run(tmp_path, "report", "funnel")
    assert code == 8
    assert not _heavy(modules), _heavy(modules)
    assert not (tmp_path / "mql.db").exists()


def test_a_command_line_builds_only_its_command() -> None:
    import typer

    from mqlengine.cli.options import _registered_name, build_only_named

    def init() -> None:
        """A command named after its function."""

    def make() -> typer.Typer:
        app = typer.Typer()
        app.command()(init)
        app.command("leads")(init)
        app.add_typer(typer.Typer(), name="report")
        return app

    everything = ["init", "leads", "report"]
    for args, left in (
        (["--database", "x.db", "report", "funnel"], ["report"]),
        (["report", "funnel", "--database", "x.db"], ["report"]),
        (["--database=x.db", "init"], ["init"]),
        (["-d", "x.db", "leads", "--stage", "mql"], ["leads"]),
        (["--help"], everything),  # the root's help lists every command
        (["reportt"], everything),  # and so does "no such command"
    ):
        app = make()
        build_only_named(app, args)
        infos = [*app.registered_commands, *app.registered_groups]
        assert sorted(str(_registered_name(i)) for i in infos) == left, args

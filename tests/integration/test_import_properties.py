"""Properties of ``mql import`` (JSONL, CSV persons, CSV events) on a real SQLite store:
whatever the rows hold, each is imported or reported with its row number, and the summary
adds up to the row count. Never an exception for what a row contains."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mqlengine
from mqlengine.errors import ValidationError
from mqlengine.facade import MqlEngine
from mqlengine.ingest.importer import ImportReport

pytestmark = pytest.mark.slow

EXAMPLES = 15
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory, _sqlite_template: Path) -> Iterator[MqlEngine]:
    path = tmp_path_factory.mktemp("import-properties") / "mql.db"
    with (
        contextlib.closing(sqlite3.connect(_sqlite_template)) as source,
        contextlib.closing(sqlite3.connect(path)) as target,
    ):
        source.backup(target)
    from support.paths import EXAMPLE

    with mqlengine.open(f"sqlite:///{path}", definition=EXAMPLE) as eng:
        yield eng


cells = (
    st.text(max_size=12)
    | st.sampled_from(
        [
            "",
            " ",
            "ada@northwind.io",
            "not-an-email",
            "2026-11-20T12:00:00Z",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-01:00",
            "99999999999999999999999",
            "-9223372036854775809",
            "1e400",
            "nan",
            "true",
            "VP Marketing",
            "Demo Requested",
            "x" * 400,
        ]
    )
    | st.integers().map(str)
)
COLUMNS = ("email", "user_id", "title", "company.employees", "event", "timestamp", "message_id")


def _summed(report: ImportReport, rows: int) -> None:
    assert report.rows == rows
    assert report.accepted + report.duplicates + len(report.problems) == rows
    numbers = [p.row for p in report.problems]
    assert len(set(numbers)) == len(numbers), "a row is reported once"
    for problem in report.problems:
        assert problem.reason


def _csv(folder: Path, header: tuple[str, ...], rows: list[tuple[str, ...]]) -> Path:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    path = folder / f"{uuid.uuid4().hex}.csv"
    path.write_text(out.getvalue(), encoding="utf-8")
    return path


@SETTINGS
@given(st.lists(st.tuples(*[cells] * len(COLUMNS)), max_size=6))
def test_person_rows_are_imported_or_reported(
    engine: MqlEngine, tmp_path: Path, rows: list[tuple[str, ...]]
) -> None:
    path = _csv(tmp_path, COLUMNS, rows)
    mapping = {c: c for c in COLUMNS if c not in ("event", "message_id")}
    report = engine.import_file(path, kind="persons", mapping=mapping)
    _summed(report, len(rows))
    lines = path.read_bytes().count(b"\n")
    for problem in report.problems:
        # a problem names the line its row starts on (the header is line 1); a quoted field
        # may hold line breaks, so a row can start past line len(rows) + 1
        assert 2 <= problem.row <= lines


@SETTINGS
@given(st.lists(st.tuples(*[cells] * len(COLUMNS)), max_size=6))
def test_event_rows_are_imported_or_reported(
    engine: MqlEngine, tmp_path: Path, rows: list[tuple[str, ...]]
) -> None:
    path = _csv(tmp_path, (*COLUMNS, "properties.plan"), [(*r, r[2]) for r in rows])
    report = engine.import_file(path, kind="events")
    _summed(report, len(rows))


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats(allow_nan=False)
    | cells,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(cells, inner, max_size=3),
    max_leaves=10,
)
messages = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["identify", "track", "page", "group", "alias", "x"]),
        "userId": cells | st.integers(),
        "anonymousId": cells,
        "event": cells,
        "messageId": cells,
        "groupId": cells,
        "previousId": cells,
        "timestamp": cells,
        "sentAt": cells,
        "traits": json_values,
        "properties": json_values,
        "context": json_values,
    },
)
lines = st.one_of(
    messages.map(lambda m: json.dumps(m).encode()),  # json: integers past 64 bits too
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(min_size=1, max_size=30).filter(lambda b: b.strip() and b"\n" not in b),
)


@SETTINGS
@given(st.lists(lines, max_size=6))
def test_jsonl_lines_are_imported_or_reported(
    engine: MqlEngine, tmp_path: Path, rows: list[bytes]
) -> None:
    path = tmp_path / f"{uuid.uuid4().hex}.jsonl"
    path.write_bytes(b"".join(line.replace(b"\n", b" ") + b"\n" for line in rows))
    counted = [line for line in rows if line.replace(b"\n", b" ").strip()]
    report = engine.import_file(path)
    _summed(report, len(counted))


def test_a_csv_with_bytes_that_are_not_utf8_names_the_line_and_what_was_committed(
    engine: MqlEngine, tmp_path: Path
) -> None:
    """A byte the file's encoding cannot hold stops the import where it is: the line, the
    byte, the rows already imported, and how to name the encoding."""
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"email,title\nana@acme.io,VP\nb\xe9a@acme.io,Head\n")
    with pytest.raises(ValidationError) as refused:
        engine.import_file(path, kind="persons")
    message = str(refused.value)
    assert "latin1.csv:3" in message and "0xe9" in message and "--encoding" in message


def test_a_csv_with_a_nul_byte_reports_the_row(engine: MqlEngine, tmp_path: Path) -> None:
    path = tmp_path / "nul.csv"
    path.write_bytes(b"email,title\nana@acme.io,VP\nbo@acme.io,He\x00ad\ncy@acme.io,CTO\n")
    report = engine.import_file(path, kind="persons")
    _summed(report, 3)
    assert [p.row for p in report.problems] == [3]

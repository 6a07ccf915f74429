"""The write path's typed person row, and the columns the writer's memory keeps."""

from __future__ import annotations

from datetime import UTC, datetime

from mqlengine.domain.person import PERSON_COLUMNS, Person
from mqlengine.store.tables import persons

AT = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def test_every_remembered_column_exists() -> None:
    """(That the SQLite change triggers watch each of them is checked on a migrated
    database: tests/integration/test_writer_state.py.)"""
    assert set(PERSON_COLUMNS) <= set(persons.c.keys())


def test_from_row_reads_a_narrow_row_without_traits() -> None:
    row = {name: None for name in PERSON_COLUMNS if name != "traits"}
    row.update(id=7, profile={"seniority": "vp"}, flags=["free_mail"], stage="lead")
    row.update(last_seen_at=AT, total_score=None)
    person = Person.from_row(row)
    assert person.traits is None  # not read, as opposed to empty
    assert person.flags == ("free_mail",)
    assert person.total_score == 0.0
    assert Person.from_row({**row, "traits": {"title": "CTO"}}).traits == {"title": "CTO"}


def test_a_created_person_is_the_row_read_back() -> None:
    made = {
        "id": 3,
        "traits": {},
        "profile": {},
        "flags": [],
        "last_seen_at": AT,
        "stage": "lead",
        "channel": "direct",
        "total_score": 0.0,
    }
    read_back = Person.from_row({name: made.get(name) for name in PERSON_COLUMNS})
    assert Person.created(made) == read_back

"""The shared CSV reader: numbers, dates, booleans, column names, dialects and encodings."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from mqlengine.errors import ValidationError
from mqlengine.ingest.csvread import (
    CsvEncodingError,
    CsvFile,
    CsvOptions,
    coerce_value,
    parse_amount,
    parse_bool,
    parse_datetime,
    parse_number,
    resolve_columns,
)


@pytest.mark.parametrize(
    ("text", "decimal", "value"),
    [
        ("1234.56", ".", 1234.56),
        ("1,234.56", ".", 1234.56),
        ("$1,000", ".", 1000.0),
        ("1.234,56", ",", 1234.56),
        ("1,5", ",", 1.5),
        ("1.234", ",", 1234.0),
        ("-3", ".", -3.0),
        (" 12 ", ".", 12.0),
        ("0.5", ".", 0.5),
        (",5", ",", 0.5),
        ("USD 1,000.50", ".", 1000.5),
        ("12,50 EUR", ",", 12.5),
        ("-$5", ".", -5.0),
    ],
)
def test_numbers_in_the_decimal_mark_named(text: str, decimal: str, value: float) -> None:
    assert parse_number(text, decimal=decimal) == pytest.approx(value)


@pytest.mark.parametrize(
    ("text", "decimal"),
    [("1.234,56", "."), ("1,5", "."), ("1,23", "."), ("1.5", ","), ("12a", "."), ("", ".")],
)
def test_ambiguous_numbers_are_refused_never_guessed(text: str, decimal: str) -> None:
    with pytest.raises(ValueError, match="is not a number"):
        parse_number(text, decimal=decimal, name="amount")


def test_negative_amounts_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        parse_amount("-1")
    assert parse_amount("0") == 0.0


def test_dates_are_read_in_the_files_zone() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    assert parse_datetime("2026-01-10", tz=berlin) == datetime(2026, 1, 9, 23, tzinfo=UTC)
    assert parse_datetime("2026-07-10T12:00", tz=berlin) == datetime(2026, 7, 10, 10, tzinfo=UTC)
    # an offset in the value wins over the zone
    assert parse_datetime("2026-01-10T12:00:00Z", tz=berlin) == datetime(
        2026, 1, 10, 12, tzinfo=UTC
    )
    assert parse_datetime("3/4/2026 1:30 PM") == datetime(2026, 3, 4, 13, 30, tzinfo=UTC)
    assert parse_datetime("04.03.2026") == datetime(2026, 3, 4, tzinfo=UTC)
    assert parse_datetime("2026/03/04") == datetime(2026, 3, 4, tzinfo=UTC)


@pytest.mark.parametrize("text", ["13/01/2026", "2026-13-01", "yesterday", "2026-02-30"])
def test_bad_dates_say_what_is_wrong(text: str) -> None:
    with pytest.raises(ValueError, match="mql_at"):
        parse_datetime(text, name="mql_at")


def test_future_dates_are_refused_when_asked() -> None:
    now = datetime(2026, 4, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="future"):
        parse_datetime("2026-04-02", now=now)
    assert parse_datetime("2026-04-01", now=now) == now


def test_booleans_and_free_values() -> None:
    for text, value in [("yes", True), ("No", False), ("Y", True), ("n", False), ("1", True)]:
        assert parse_bool(text) is value
    with pytest.raises(ValueError):
        parse_bool("maybe")
    assert coerce_value("yes") is True
    assert coerce_value("1", column="Marketing Consent") is True
    assert coerce_value("0", column="opt_in") is False
    assert coerce_value("1", column="employees") == 1
    assert coerce_value("+4930123") == "+4930123"
    assert coerce_value("007") == "007"
    assert coerce_value("1,5") == "1,5"
    assert coerce_value("1,5", decimal=",") == 1.5
    assert coerce_value("1,234") == 1234 and isinstance(coerce_value("1,234"), int)
    assert coerce_value("") is None


def test_columns_match_by_name_alias_and_are_suggested() -> None:
    fields = ("email", "channel", "customer_at", "created_at")
    header = ["E-Mail", "Created At", "origin", "won_at", "Notes"]
    columns = resolve_columns(
        header,
        fields,
        {},
        aliases={"email": ("e_mail",)},
        hints={"origin": "channel", "won_at": "customer_at"},
    )
    assert columns.mapped == {"email": "E-Mail", "created_at": "Created At"}
    assert columns.ignored == [("origin", "channel"), ("won_at", "customer_at"), ("Notes", None)]
    with pytest.raises(ValidationError, match=r"origin \(channel\?\)"):
        resolve_columns(header, fields, {}, hints={"origin": "channel"}, strict=True)
    with pytest.raises(ValidationError, match="did you mean channel"):
        resolve_columns(header, fields, {"chanel": "origin"})


def test_the_file_dialect_and_encoding(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes('\ufeffa;b\n1;"x;y"\n\n2;3;4\n'.encode())
    with CsvFile(path) as reader:
        assert reader.delimiter == ";" and reader.header == ["a", "b"]
        got = [(r.number, r.values, r.problem is not None) for r in reader.rows()]
    assert got == [(2, {"a": "1", "b": "x;y"}, False), (4, {}, True)]
    path.write_bytes("a,b\n1,2\n".encode("utf-16"))
    with CsvFile(path) as reader:
        assert [r.values for r in reader.rows()] == [{"a": "1", "b": "2"}]
    path.write_bytes(b"a\tb\nx\t\xe9\n")
    with CsvFile(path) as reader:
        assert reader.delimiter == "\t"
        with pytest.raises(CsvEncodingError) as caught:
            list(reader.rows())
    assert caught.value.line == 2 and "0xe9" in caught.value.message
    with CsvFile(path, CsvOptions(encoding="latin-1")) as reader:
        assert [r.values for r in reader.rows()] == [{"a": "x", "b": "é"}]
    path.write_bytes(b"\n\n")
    with pytest.raises(ValidationError, match="empty"):
        CsvFile(path)


def test_options_are_checked() -> None:
    with pytest.raises(ValidationError, match="decimal"):
        CsvOptions(decimal=";")
    with pytest.raises(ValidationError, match="time zone"):
        CsvOptions(tz="Mars/Olympus")
    with pytest.raises(ValidationError, match="encoding"):
        CsvOptions(encoding="klingon")
    assert CsvOptions(delimiter="tab").delimiter == "\t"

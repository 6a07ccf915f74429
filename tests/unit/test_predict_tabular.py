"""Reading a training table: CSV (any delimiter, quoted) and Parquet, types, the label's
positive value, columns that look like outcomes or ids, and clear errors for bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mqlengine.errors import ValidationError
from mqlengine.predict.tabular import read_table


def leads_frame(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    won = rng.random(n) < 0.3
    return pd.DataFrame(
        {
            "lead_id": [f"L{1000 + i}" for i in range(n)],
            "email": [f"p{i}@example.com" for i in range(n)],
            "country": rng.choice(["DE", "FR", "US"], n),
            "employees": np.where(rng.random(n) < 0.1, np.nan, rng.integers(1, 5000, n)),
            "visits": rng.poisson(3, n),
            "status": np.where(won, "closed won", "closed lost"),
            "echo": np.where(won, "a", "b"),
            "converted": np.where(won, "yes", "no"),
        }
    )


def write_csv(frame: pd.DataFrame, path: Path, sep: str = ";") -> Path:
    frame.to_csv(path, sep=sep, index=False, quoting=1)  # every field quoted
    return path


def test_csv_types_label_and_suspicious_columns(tmp_path: Path) -> None:
    path = write_csv(leads_frame(), tmp_path / "leads.csv")
    table = read_table(path, label="converted")
    assert table.positive == "yes" and table.rows == 300
    assert table.positives == int((leads_frame()["converted"] == "yes").sum())
    assert table.X.categorical == ("country",)
    assert list(table.X.frame.columns) == ["country", "employees", "visits"]
    assert table.X.frame["employees"].isna().sum() > 0  # empty cells are missing numbers
    assert str(table.X.frame["country"].dtype) == "category"
    notes = {n.column: n for n in table.notes}
    assert "identifier" in notes["lead_id"].reason and notes["lead_id"].dropped
    assert "identifier" in notes["email"].reason
    assert "outcome" in notes["status"].reason and notes["status"].dropped
    assert "separates the label" in notes["echo"].reason and notes["echo"].dropped
    assert set(table.dropped) == {"lead_id", "email", "status", "echo"}


def test_keep_drop_positive_and_parquet(tmp_path: Path) -> None:
    frame = leads_frame()
    path = tmp_path / "leads.parquet"
    frame.to_parquet(path)
    table = read_table(path, label="converted", positive="no", keep=["status"], drop=["visits"])
    assert table.positive == "no" and table.positives == int((frame["converted"] == "no").sum())
    assert "status" in table.X.features and "visits" not in table.X.features
    assert [n.dropped for n in table.notes if n.column == "status"] == [False]
    assert table.dropped[0] == "visits"


def test_a_strong_column_named_like_a_measurement_after_the_call_is_warned(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(1)
    y = rng.random(400) < 0.2
    frame = pd.DataFrame(
        {
            "duration": np.where(y, rng.normal(600, 200, 400), rng.normal(250, 150, 400)).round(),
            "age": rng.integers(20, 70, 400),
            "y": np.where(y, "yes", "no"),
        }
    )
    table = read_table(write_csv(frame, tmp_path / "calls.csv", ","), label="y")
    (note,) = table.notes
    assert note.column == "duration" and not note.dropped
    assert "during or after the contact" in note.reason and "--drop" in note.reason
    assert "duration" in table.X.features  # warned, not dropped


def test_label_errors(tmp_path: Path) -> None:
    path = write_csv(leads_frame(), tmp_path / "leads.csv")
    with pytest.raises(
        ValidationError, match=r"no label column 'convertd' \(did you mean 'converted'\?\)"
    ):
        read_table(path, label="convertd")
    with pytest.raises(ValidationError, match=r"cannot tell which value of 'country'.*--positive"):
        read_table(path, label="country")
    with pytest.raises(ValidationError, match="has no value 'maybe'"):
        read_table(path, label="converted", positive="maybe")
    one = leads_frame().assign(converted="yes")
    with pytest.raises(ValidationError, match="single value \\('yes'\\)"):
        read_table(write_csv(one, tmp_path / "one.csv"), label="converted")
    with pytest.raises(ValidationError, match="no --drop column 'nope'"):
        read_table(path, label="converted", drop=["nope"])


def test_rows_without_a_label_are_left_out_and_counted(tmp_path: Path) -> None:
    frame = leads_frame()
    frame.loc[:9, "converted"] = ""
    table = read_table(write_csv(frame, tmp_path / "leads.csv", "\t"), label="converted")
    assert table.unlabelled == 10 and table.rows == 290


def test_unreadable_files_name_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"missing\.csv: no such file"):
        read_table(tmp_path / "missing.csv", label="y")
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a;b;y\n1;2;yes\n3;4;no\n5;no\n")
    with pytest.raises(ValidationError, match=r"ragged.csv:4: 2 field\(s\) where the header has 3"):
        read_table(ragged, label="y")
    latin = tmp_path / "latin.csv"
    latin.write_bytes("a;y\nx;yes\nM\xfcller;no\n".encode("latin-1"))
    with pytest.raises(ValidationError, match=r"latin.csv:3: byte 0xfc is not UTF-8"):
        read_table(latin, label="y")
    assert read_table(latin, label="y", encoding="latin-1", keep=["a"]).rows == 2
    fake = tmp_path / "fake.parquet"
    fake.write_text("not parquet")
    with pytest.raises(ValidationError, match=r"fake\.parquet: not a readable Parquet file"):
        read_table(fake, label="y")
    empty = tmp_path / "empty.csv"
    empty.write_text("a;y\n")
    with pytest.raises(ValidationError, match="header but no rows"):
        read_table(empty, label="y")

"""A training table from a CSV or Parquet file: the label as 0/1, features typed
(categorical or numeric), and columns that would mislead a model flagged.

- **Reading:** CSV through the project's one CSV reader (``ingest/csvread.py``: delimiter
  and encoding detected, errors as ``file:line``); Parquet through pyarrow. Empty cells and
  ``NA``, ``N/A``, ``null``, ``None``, ``NaN``, ``?`` are missing values.
- **Types:** a column whose every present value is a number is numeric; anything else is
  categorical.
- **The label:** its positive value is given (``positive``) or recognised (yes, 1, true,
  won, converted…); rows without a label are left out (and counted).
- **Suspicious columns:** dropped unless kept (``keep``): a name that reads like an outcome
  (outcome, status, won, converted, result, stage…) or an id (``id``, ``*_id``, uuid,
  e-mail, phone); a column whose values are (nearly) all different; a column that alone
  separates the label almost perfectly (single-column ROC AUC ≥ 0.97); a constant column.
  A column that alone predicts the label very well (AUC ≥ 0.80), or whose name reads like
  something measured during or after the contact (duration, days to close…), is only warned
  about: it may be known only after the outcome.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mqlengine.errors import ValidationError
from mqlengine.ingest.csvread import CsvFile, CsvOptions, nearest_field, normalize_name
from mqlengine.predict import metrics as m
from mqlengine.predict.modeling import FeatureFrame

MISSING = frozenset({"", "na", "n/a", "nan", "null", "none", "?", "#n/a"})
POSITIVE = ("yes", "y", "true", "t", "1", "1.0", "won", "win", "converted", "success", "positive")
OUTCOME_NAME = re.compile(
    r"(^|_)(outcome|status|won|lost|win|converted|conversion|result|results|closed|stage|"
    r"churn|churned|target|label|deal_?stage|is_customer)(_|$)"
)
AFTER_NAME = re.compile(
    r"(^|_)(duration|call_?length|time_?spent|days_?to_\w+|time_?to_\w+|closed_?at|close_?date|"
    r"last_?activity|\w+_after)(_|$)"
)
ID_NAME = re.compile(r"(^|_)(id|uuid|guid|email|e_mail|phone|mobile)$|^(id|uuid|guid)(_|$)")
SEPARATES = 0.97
STRONG = 0.80
UNIQUE = 0.95  # share of distinct values above which a text column is an identifier


@dataclass(frozen=True)
class ColumnNote:
    """Something a column looks like; ``dropped`` says whether it was left out."""

    column: str
    reason: str
    dropped: bool

    def text(self) -> str:
        action = "dropped (keep it with --keep)" if self.dropped else "kept"
        return f"{self.column}: {self.reason}; {action}"


@dataclass
class Table:
    path: Path
    label: str
    positive: str
    X: FeatureFrame
    y: np.ndarray
    source: pd.DataFrame  # every column, typed (numbers as float, the rest as text)
    notes: list[ColumnNote] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    unlabelled: int = 0

    @property
    def rows(self) -> int:
        return len(self.y)

    @property
    def positives(self) -> int:
        return int(self.y.sum())


def read_frame(
    path: Path, *, delimiter: str | None = None, encoding: str | None = None
) -> pd.DataFrame:
    """The file as text columns (CSV) or as stored (Parquet)."""
    if not path.exists():
        raise ValidationError(f"{path}: no such file")
    if path.is_dir():
        raise ValidationError(f"{path}: is a folder, not a file")
    if path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            return pq.read_table(path).to_pandas()
        except (pa.ArrowInvalid, OSError) as error:
            raise ValidationError(f"{path}: not a readable Parquet file ({error})") from None
    with CsvFile(path, CsvOptions(delimiter=delimiter, encoding=encoding)) as csv_file:
        header = csv_file.header
        if any(not h for h in header):
            position = header.index("") + 1
            raise ValidationError(f"{path}:{csv_file.header_line}: column {position} has no name")
        columns: list[list[str]] = [[] for _ in header]
        for row in csv_file.rows():
            if row.problem is not None:
                raise ValidationError(f"{path}:{row.number}: {row.problem}")
            for values, name in zip(columns, header, strict=True):
                values.append(row.values[name])
    if not columns[0]:
        raise ValidationError(f"{path}: the file has a header but no rows")
    return pd.DataFrame(dict(zip(header, columns, strict=True)), dtype=object)


def _typed(column: pd.Series) -> tuple[pd.Series, bool]:
    """(values, numeric): numbers as float64 when every present value is one, else text
    (object dtype) with missing markers as None."""
    if pd.api.types.is_bool_dtype(column.dtype):
        column = column.map({True: "true", False: "false"})
    elif pd.api.types.is_numeric_dtype(column.dtype):
        return column.astype(np.float64), True
    text = column.astype("string").str.strip()
    missing = (text.isna() | text.str.lower().isin(MISSING)).to_numpy(dtype=bool)
    present = text[~missing]
    if len(present) and _numbers(present.head(200)) is not None:
        numbers = _numbers(present)
        if numbers is not None:
            out = np.full(len(text), np.nan)
            out[~missing] = numbers
            return pd.Series(out, index=column.index, name=column.name), True
    values = text.astype(object).to_numpy().copy()
    values[missing] = None
    return pd.Series(values, index=column.index, name=column.name, dtype=object), False


def _numbers(text: pd.Series) -> np.ndarray | None:
    try:
        return np.asarray(text.astype(np.float64).to_numpy())
    except (ValueError, TypeError):
        return None


def single_column_auc(values: pd.Series, numeric: bool, y: np.ndarray) -> float:
    """How well one column alone ranks the label: each row scored by its group's positive
    rate (a level, or one of 20 quantile bins of a number; missing is a group), in sample."""
    if numeric:
        numbers = values.to_numpy(dtype=np.float64)
        present = ~np.isnan(numbers)
        groups = np.full(len(numbers), -1, dtype=np.int64)
        if present.any():
            edges = np.unique(np.quantile(numbers[present], np.linspace(0, 1, 21)[1:-1]))
            groups[present] = np.searchsorted(edges, numbers[present], side="right")
    else:
        groups = pd.factorize(values, use_na_sentinel=True)[0]
    frame = pd.DataFrame({"g": groups, "y": y})
    rate = frame.groupby("g")["y"].transform("mean").to_numpy()
    return m.roc_auc(y, rate)


def _label(
    column: pd.Series, name: str, positive: str | None, path: Path
) -> tuple[np.ndarray, str, np.ndarray]:
    """(y, positive value, mask of labelled rows)."""
    text = column.map(lambda v: None if v is None or pd.isna(v) else str(v).strip())
    labelled = text.map(lambda v: v is not None and v.lower() not in MISSING).to_numpy(dtype=bool)
    values = text[labelled]
    distinct = sorted({str(v) for v in values})
    if not distinct:
        raise ValidationError(f"{path}: the label column {name!r} is empty")
    if len(distinct) == 1:
        raise ValidationError(
            f"{path}: the label column {name!r} has a single value ({distinct[0]!r}) in all "
            f"{int(labelled.sum())} labelled rows; a model needs both outcomes"
        )
    if positive is None:
        lowered = {v.lower(): v for v in distinct}
        found = [lowered[p] for p in POSITIVE if p in lowered]
        if len(distinct) != 2 or not found:
            shown = ", ".join(repr(v) for v in distinct[:10])
            raise ValidationError(
                f"{path}: cannot tell which value of {name!r} is the positive outcome "
                f"(values: {shown}{', …' if len(distinct) > 10 else ''}); name it with "
                "--positive VALUE"
            )
        positive = found[0]
    else:
        matching = [v for v in distinct if v == positive] or [
            v for v in distinct if v.lower() == positive.lower()
        ]
        if not matching:
            shown = ", ".join(repr(v) for v in distinct[:10])
            raise ValidationError(
                f"{path}: the label column {name!r} has no value {positive!r} (values: {shown})"
            )
        positive = matching[0]
    y = (values == positive).to_numpy(dtype=np.float64)
    return y, positive, labelled


def _find_column(frame: pd.DataFrame, name: str, path: Path, what: str) -> str:
    if name in frame.columns:
        return name
    by_norm = {normalize_name(str(c)): str(c) for c in frame.columns}
    if normalize_name(name) in by_norm:
        return by_norm[normalize_name(name)]
    guess = nearest_field(name, [str(c) for c in frame.columns])
    hint = f" (did you mean {guess!r}?)" if guess else ""
    raise ValidationError(
        f"{path}: no {what} column {name!r}{hint}; columns: {', '.join(map(str, frame.columns))}"
    )


def prepare(
    raw: pd.DataFrame,
    *,
    path: Path,
    label: str,
    positive: str | None = None,
    drop: Sequence[str] = (),
    keep: Sequence[str] = (),
    time_column: str | None = None,
) -> Table:
    """The training table from a frame as read (see the module's docstring)."""
    label = _find_column(raw, label, path, "label")
    dropped_by_user = [_find_column(raw, d, path, "--drop") for d in drop]
    kept = {_find_column(raw, k, path, "--keep") for k in keep}
    time_name = _find_column(raw, time_column, path, "--time") if time_column else None
    y, positive, labelled = _label(raw[label], label, positive, path)
    unlabelled = int((~labelled).sum())
    data = raw.loc[labelled].reset_index(drop=True)
    order = None
    if time_name is not None:
        moments = pd.to_datetime(data[time_name], errors="coerce", utc=True, format="mixed")
        if moments.isna().any():
            bad = int(moments.isna().idxmax())
            raise ValidationError(
                f"{path}: --time column {time_name!r} has a value that is not a date in data "
                f"row {bad + 1}: {data[time_name].iloc[bad]!r}"
            )
        order = moments.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")

    notes: list[ColumnNote] = []
    source: dict[str, pd.Series] = {}
    features: dict[str, pd.Series] = {}
    categorical: list[str] = []
    n = len(data)
    for name in map(str, data.columns):
        if name == label:
            continue
        values, numeric = _typed(data[name])
        source[name] = values
        if name in dropped_by_user or name == time_name:
            continue
        reason, drop_it = _suspicion(name, values, numeric, y, n)
        if reason:
            keep_it = name in kept
            notes.append(ColumnNote(name, reason, drop_it and not keep_it))
            if drop_it and not keep_it:
                continue
        if numeric:
            features[name] = values
        else:
            levels = sorted(pd.unique(values.dropna()).tolist())
            features[name] = pd.Series(pd.Categorical(values, categories=levels), name=name)
            categorical.append(name)
    if not features:
        raise ValidationError(
            f"{path}: no feature columns are left"
            + (f" (dropped: {', '.join(n.column for n in notes if n.dropped)})" if notes else "")
        )
    frame = pd.DataFrame(features)
    return Table(
        path=path,
        label=label,
        positive=positive,
        X=FeatureFrame(frame, tuple(categorical), order),
        y=y,
        source=pd.DataFrame(source),
        notes=notes,
        dropped=[*dropped_by_user, *(n.column for n in notes if n.dropped)],
        unlabelled=unlabelled,
    )


def _suspicion(
    name: str, values: pd.Series, numeric: bool, y: np.ndarray, n: int
) -> tuple[str, bool]:
    """(why the column is suspicious, whether to drop it); ("", False) when it is not."""
    key = normalize_name(name)
    present = values.dropna()
    distinct = present.nunique()
    if distinct <= 1:
        return "has a single value", True
    if OUTCOME_NAME.search(key):
        return "its name reads like an outcome (known only afterwards?)", True
    if ID_NAME.search(key):
        return "its name reads like an identifier", True
    if not numeric and len(present) >= 20 and distinct >= UNIQUE * len(present):
        return f"{distinct} different values in {len(present)} rows: an identifier?", True
    if numeric and len(present) >= 20 and distinct == len(present):
        numbers = present.to_numpy(dtype=np.float64)
        steps = np.diff(numbers)
        if np.all(numbers == np.round(numbers)) and (np.all(steps > 0) or np.all(steps < 0)):
            return "whole numbers that only rise (or fall) row by row: a row number?", True
    auc = single_column_auc(values, numeric, y)
    if auc >= SEPARATES:
        return f"alone it separates the label almost perfectly (ROC AUC {auc:.3f})", True
    signs = []
    if AFTER_NAME.search(key):
        signs.append("its name reads like something measured during or after the contact")
    if auc >= STRONG:
        signs.append(f"alone it predicts the label very well (ROC AUC {auc:.3f})")
    if signs:
        return (
            "; ".join(signs) + ": if it is known only after the outcome, leave it out with --drop"
        ), False
    return "", False


def read_table(
    path: Path,
    *,
    label: str,
    positive: str | None = None,
    drop: Sequence[str] = (),
    keep: Sequence[str] = (),
    time_column: str | None = None,
    delimiter: str | None = None,
    encoding: str | None = None,
) -> Table:
    raw = read_frame(path, delimiter=delimiter, encoding=encoding)
    return prepare(
        raw,
        path=path,
        label=label,
        positive=positive,
        drop=drop,
        keep=keep,
        time_column=time_column,
    )

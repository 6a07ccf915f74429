"""Reading CSV exports the same way in every import (persons, events, history, spend,
outcomes): the file's dialect and encoding, column names, numbers, dates, booleans and the
problems of each row.

- **Encoding:** a byte-order mark says UTF-8 or UTF-16; otherwise UTF-8, or the encoding
  named (``--encoding latin-1``). A byte that does not decode stops the import with its
  line number (:class:`CsvEncodingError`); the importer says how many rows it had
  committed by then.
- **Delimiter:** ``,``, ``;``, tab or ``|``, whichever the header line uses most (outside
  quotes), unless one is named.
- **Rows:** a row with more or fewer fields than the header is a problem of that row (its
  values would land in the wrong columns); blank lines are skipped; an empty file is an
  error.
- **Columns:** header names are matched to the import's fields ignoring case, spaces and
  punctuation (``Created At`` is ``created_at``), then through the import's aliases.
  Columns that match nothing are listed with the nearest field (a small table of synonyms,
  then :func:`difflib.get_close_matches`); in strict mode they are an error.
- **Numbers:** ``.`` is the decimal mark unless ``,`` is named; the other mark may group
  thousands (``1,234.56``; with ``,``: ``1.234,56``) only in groups of three. Anything
  else (``1,5`` with ``.``, ``1.234,56`` with ``.``) is refused, never guessed.
- **Dates:** ISO dates and times, ``YYYY/MM/DD``, US ``M/D/YYYY`` and ``D.M.YYYY``, with an
  optional time. A value without an offset is a time in the file's zone (``--tz``), a date
  alone is midnight there. A date in the future can be refused.
- **Booleans:** ``true/false``, ``yes/no``, ``y/n``, ``1/0`` (any case).
"""

from __future__ import annotations

import codecs
import csv
import difflib
import io
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, tzinfo
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mqlengine.domain.bounds import OutOfBounds, utc_moment
from mqlengine.errors import ValidationError

DELIMITERS = (",", ";", "\t", "|")
SAMPLE = 64 * 1024
_DELIMITER_NAMES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}


class CsvEncodingError(ValidationError):
    """A byte of the file does not decode in its encoding; ``line`` is where."""

    def __init__(self, path: Path, line: int, encoding: str, detail: str) -> None:
        super().__init__(
            f"{path}:{line}: {detail} is not {encoding}; name the file's encoding "
            "(e.g. --encoding latin-1)"
        )
        self.path = path
        self.line = line
        self.encoding = encoding

    def after(self, committed: int) -> ValidationError:
        """The same error, saying how many rows the import had committed before it."""
        if committed:
            note = (
                f" ({committed} row(s) before it were already imported; importing the file"
                " again with the right encoding adds only what is missing)"
            )
        else:
            note = " (nothing was imported)"
        return ValidationError(self.message + note)


@dataclass
class RowProblem:
    """A row's problem: ``row`` is the line the row starts on (the header is line 1).
    A warning does not stop the row from loading."""

    row: int
    reason: str
    warning: bool = False


@dataclass(frozen=True)
class CsvOptions:
    delimiter: str | None = None  # None: detected from the header line
    encoding: str | None = None  # None: BOM, else UTF-8
    decimal: str = "."  # the decimal mark of numbers: "." or ","
    tz: str = "UTC"  # the zone of dates and times without an offset
    strict: bool = False  # columns that match no field are an error

    def __post_init__(self) -> None:
        if self.decimal not in (".", ","):
            raise ValidationError(f"--decimal must be '.' or ',', not {self.decimal!r}")
        zone(self.tz)
        if self.delimiter is not None:
            named = _DELIMITER_NAMES.get(self.delimiter.lower(), self.delimiter)
            if len(named) != 1:
                raise ValidationError(
                    f"--delimiter must be one character (or tab), not {self.delimiter!r}"
                )
            object.__setattr__(self, "delimiter", named)
        if self.encoding is not None:
            try:
                codecs.lookup(self.encoding)
            except LookupError:
                raise ValidationError(f"unknown encoding {self.encoding!r}") from None

    @property
    def zone(self) -> tzinfo:
        return zone(self.tz)


def zone(name: str) -> tzinfo:
    if name.upper() in ("UTC", "Z"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"unknown time zone {name!r} (e.g. UTC, Europe/Berlin)") from None


# -- columns ---------------------------------------------------------------------------


def normalize_name(name: str) -> str:
    """A column name as a field name: lower case, runs of other characters as ``_``."""
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")


@dataclass
class Columns:
    """Which column feeds which field, and the columns nothing reads."""

    mapped: dict[str, str]  # field → column
    ignored: list[tuple[str, str | None]] = field(default_factory=list)  # (column, nearest)

    def describe_ignored(self) -> str:
        parts = [f"{c} ({s}?)" if s else c for c, s in self.ignored]
        return ", ".join(parts)


def nearest_field(
    column: str, fields: Sequence[str], hints: Mapping[str, str] | None = None
) -> str | None:
    """The field a column probably means: a synonym first, then the closest spelling."""
    name = normalize_name(column)
    if hints and name in hints:
        return hints[name]
    found = difflib.get_close_matches(name, list(fields), n=1, cutoff=0.6)
    return found[0] if found else None


def resolve_columns(
    header: Sequence[str],
    fields: Sequence[str],
    mapping: Mapping[str, str],
    *,
    aliases: Mapping[str, Sequence[str]] | None = None,
    hints: Mapping[str, str] | None = None,
    strict: bool = False,
    extra: Sequence[str] = (),
    what: str = "field",
) -> Columns:
    """Map the header to ``fields``: ``mapping`` (field → column) first, then a column whose
    normalised name is the field, then the field's ``aliases``. Columns in ``extra`` are
    read elsewhere (not reported). Everything else is listed as ignored with the nearest
    field (an error in ``strict`` mode)."""
    unknown = [t for t in mapping if t not in fields]
    if unknown:
        raise ValidationError(
            "; ".join(
                f"unknown {what} '{t}'"
                + (f" (did you mean {s}?)" if (s := nearest_field(t, fields, hints)) else "")
                for t in unknown
            )
            + f" (use: {', '.join(fields)})"
        )
    missing = [c for c in mapping.values() if c not in header]
    if missing:
        raise ValidationError(
            f"no column(s) {', '.join(repr(c) for c in missing)} in the file "
            f"(has: {', '.join(header)})"
        )
    by_name: dict[str, str] = {}
    for column in header:
        by_name.setdefault(normalize_name(column), column)
    mapped = dict(mapping)
    taken = set(mapping.values())
    for target in fields:
        if target in mapped:
            continue
        for candidate in (target, *(aliases or {}).get(target, ())):
            found = by_name.get(normalize_name(candidate))
            if found is not None and found not in taken:
                mapped[target] = found
                taken.add(found)
                break
    used = taken | set(extra)
    ignored = [(c, nearest_field(c, fields, hints)) for c in header if c not in used and c.strip()]
    columns = Columns(mapped, ignored)
    if strict and ignored:
        raise ValidationError(
            f"column(s) that match no {what}: {columns.describe_ignored()} "
            "(map them with --map FIELD=Column, or drop --strict to ignore them)"
        )
    return columns


# -- values ----------------------------------------------------------------------------

_CURRENCY = "$€£¥"
_BOOLEANS = {
    "true": True,
    "false": False,
    "yes": True,
    "no": False,
    "y": True,
    "n": False,
    "1": True,
    "0": False,
}


def parse_number(text: str, *, decimal: str = ".", name: str = "value") -> float:
    """A number as the file writes it; ValueError (naming ``name``) when it is not one or
    when its marks are ambiguous under the decimal mark in force."""
    raw = text
    value = text.strip().replace("\u00a0", "").replace(" ", "")
    value = re.sub(r"^[A-Z]{3}(?=[-+\d.,])|(?<=[\d.,])[A-Z]{3}$", "", value)  # USD 5, 5 EUR
    value = value.strip(_CURRENCY)
    sign = 1.0
    if value.startswith("-"):
        sign, value = -1.0, value[1:]
    elif value.startswith("+"):
        value = value[1:]
    value = value.strip(_CURRENCY)
    group = "," if decimal == "." else "."
    d, g = re.escape(decimal), re.escape(group)
    plain = re.fullmatch(rf"(\d+)?(?:{d}(\d+))?", value)
    grouped = re.fullmatch(rf"(\d{{1,3}}(?:{g}\d{{3}})+)(?:{d}(\d+))?", value)
    match = plain if plain and value and value != decimal else grouped
    if match is None:
        hint = (
            " (decimal commas: name --decimal ,)"
            if decimal == "." and "," in value
            else " (the decimal mark is ',' as named by --decimal)"
            if decimal == "," and "." in value
            else ""
        )
        raise ValueError(f"{name}: {raw.strip()!r} is not a number{hint}")
    whole = (match.group(1) or "0").replace(group, "")
    fraction = match.group(2) or "0"
    return sign * float(f"{whole}.{fraction}")


def parse_amount(text: str, *, decimal: str = ".", name: str = "amount") -> float:
    """A money amount: a number that is not negative."""
    amount = parse_number(text, decimal=decimal, name=name)
    if amount < 0:
        raise ValueError(f"{name}: {text.strip()!r} is negative")
    return amount


def parse_bool(text: str, *, name: str = "value") -> bool:
    key = text.strip().lower()
    if key not in _BOOLEANS:
        raise ValueError(f"{name}: {text.strip()!r} is not yes/no, true/false, y/n or 1/0")
    return _BOOLEANS[key]


_US = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})")
_DOTTED = re.compile(r"(\d{1,2})\.(\d{1,2})\.(\d{4})")
_SLASHED_ISO = re.compile(r"(\d{4})/(\d{1,2})/(\d{1,2})")
_TIME = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?\s*([AaPp][Mm])?")


def parse_datetime(
    text: str, *, tz: tzinfo = UTC, name: str = "date", now: datetime | None = None
) -> datetime:
    """A date or time as UTC; values without an offset are read in ``tz``. With ``now``,
    a moment after it is refused. ValueError names ``name`` and what is wrong."""
    value = text.strip()
    try:
        moment = utc_moment(_parse_moment(value, tz, name))
    except OverflowError:  # a year-1 or year-9999 moment whose offset leaves the calendar
        raise ValueError(f"{name}: {value!r} is outside the supported range") from None
    except OutOfBounds as error:
        raise ValueError(f"{name}: {error}") from None
    if now is not None and moment > now:
        raise ValueError(f"{name}: {value!r} is in the future")
    return moment


def _parse_moment(value: str, tz: tzinfo, name: str) -> datetime:
    iso = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        pass
    else:
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=tz)
        return moment.astimezone(UTC)
    date_part, _, time_part = value.partition(" ")
    year = month = day = 0
    if m := _SLASHED_ISO.fullmatch(date_part):
        year, month, day = int(m[1]), int(m[2]), int(m[3])
    elif m := _US.fullmatch(date_part):
        month, day, year = int(m[1]), int(m[2]), int(m[3])
        if month > 12:
            raise ValueError(
                f"{name}: {value!r} is not M/D/YYYY (slashed dates are read as US "
                "month/day; write ISO dates, YYYY-MM-DD)"
            )
    elif m := _DOTTED.fullmatch(date_part):
        day, month, year = int(m[1]), int(m[2]), int(m[3])
    else:
        raise ValueError(f"{name}: {value!r} is not a date (use YYYY-MM-DD or ISO 8601)")
    clock = time()
    if time_part.strip():
        t = _TIME.fullmatch(time_part.strip())
        if t is None:
            raise ValueError(f"{name}: {value!r} has a time that is not HH:MM[:SS]")
        hour, minute, second = int(t[1]), int(t[2]), int(t[3] or 0)
        if t[4]:
            if not 1 <= hour <= 12:
                raise ValueError(f"{name}: {value!r} has an hour that is not 1–12 with AM/PM")
            hour = hour % 12 + (12 if t[4].lower() == "pm" else 0)
        try:
            clock = time(hour, minute, second)
        except ValueError:
            raise ValueError(f"{name}: {value!r} has no such time of day") from None
    try:
        return datetime(
            year, month, day, clock.hour, clock.minute, clock.second, tzinfo=tz
        ).astimezone(UTC)
    except ValueError:
        raise ValueError(f"{name}: {value!r} is no such day") from None


BOOLEAN_COLUMN = re.compile(
    r"(consent|opt_?in|opt_?out|optin|subscribed|unsubscribed|gdpr|marketing_ok|"
    r"do_not_|dnc|agreed|accepts?_|is_|has_)",
)


def coerce_value(text: str, *, column: str = "", decimal: str = ".") -> Any:
    """A free-form cell as the value it writes (traits and properties): empty → None,
    yes/no words → booleans (``1``/``0`` too in a consent-like column), numbers in the
    file's decimal mark → int or float, anything else (``+49…``, ``007``, ``1,5`` under
    ``.``) stays text."""
    value = text.strip()
    if value == "":
        return None
    lowered = value.lower()
    if lowered in ("true", "false", "yes", "no", "y", "n"):
        return _BOOLEANS[lowered]
    if lowered in ("1", "0") and BOOLEAN_COLUMN.search(normalize_name(column)):
        return _BOOLEANS[lowered]
    if value[0] in "+" or (len(value) > 1 and value[0] == "0" and value[1].isdigit()):
        return value
    if re.fullmatch(r"-?\d+", value):
        whole = int(value)  # past 64 bits JSON cannot keep it exactly: it stays text
        return whole if -(2**63) <= whole < 2**64 else value
    if re.fullmatch(r"-?\d*[.,]\d+", value):
        try:
            number = parse_number(value, decimal=decimal)
        except ValueError:
            return value
        return int(number) if decimal not in value and number.is_integer() else number
    return value


# -- the file --------------------------------------------------------------------------


@dataclass
class CsvRow:
    number: int  # the line the row starts on (header = 1)
    values: dict[str, str]  # column → text (stripped of nothing)
    problem: str | None = None  # a ragged row: values are empty


class CsvFile:
    """An open CSV export: ``header``, ``delimiter``, ``encoding`` and :meth:`rows`."""

    def __init__(self, path: Path, options: CsvOptions | None = None) -> None:
        self.path = path
        self.options = options or CsvOptions()
        if not path.exists():
            raise ValidationError(f"{path}: no such file")
        self._binary: IO[bytes] = path.open("rb")
        self._text: io.TextIOWrapper | None = None
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    def _open(self) -> None:
        sample = self._binary.read(SAMPLE)
        self._binary.seek(0)
        if not sample.strip(b" \t\r\n\xef\xbb\xbf\xff\xfe\x00"):
            raise ValidationError(f"{self.path}: the file is empty (no header row)")
        encoding = self.options.encoding
        if encoding is None:
            if sample.startswith(codecs.BOM_UTF8):
                encoding = "utf-8-sig"
            elif sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
                encoding = "utf-16"
            else:
                encoding = "utf-8"
        elif codecs.lookup(encoding).name == "utf-8":
            encoding = "utf-8-sig"  # a named UTF-8 may still carry a BOM
        self.encoding = encoding
        self._lines = self._decoded_lines()
        self._line = 0
        first = ""
        for line in self._lines:
            if line.strip():
                first = line
                break
        if not first:
            raise ValidationError(f"{self.path}: the file is empty (no header row)")
        self.delimiter = self.options.delimiter or _sniff(first)
        header = next(csv.reader([first], delimiter=self.delimiter))
        self.header = [h.strip() for h in header]
        self.header_line = self._line
        seen: set[str] = set()
        for name in self.header:
            if name and name in seen:
                raise ValidationError(f"{self.path}: column {name!r} appears twice in the header")
            seen.add(name)

    def _decoded_lines(self) -> Iterator[str]:
        if codecs.lookup(self.encoding).name.startswith("utf-16"):
            self._text = io.TextIOWrapper(self._binary, encoding=self.encoding, newline="")
            for line in self._text:
                self._line += 1
                yield line
            return
        decode = codecs.getincrementaldecoder(self.encoding)()
        for raw in self._binary:
            self._line += 1
            try:
                yield decode.decode(raw)
            except UnicodeDecodeError as error:
                byte = raw[error.start : error.start + 1].hex()
                raise CsvEncodingError(
                    self.path, self._line, _encoding_name(self.encoding), f"byte 0x{byte}"
                ) from None
        try:
            tail = decode.decode(b"", final=True)
        except UnicodeDecodeError:
            raise CsvEncodingError(
                self.path, self._line, _encoding_name(self.encoding), "the last byte"
            ) from None
        if tail:
            yield tail

    def rows(self) -> Iterator[CsvRow]:
        """The data rows; blank lines are skipped, ragged rows come with a problem."""
        width = len(self.header)
        starts: list[int] = []

        def lines() -> Iterator[str]:
            for line in self._lines:
                starts.append(self._line)
                yield line

        reader = csv.reader(lines(), delimiter=self.delimiter)
        while True:
            mark = len(starts)
            try:
                record = next(reader)
            except StopIteration:
                return
            except csv.Error as error:
                raise ValidationError(f"{self.path}:{self._line}: {error}") from None
            number = starts[mark] if mark < len(starts) else self._line
            if not record:
                continue  # a blank line
            if all(not v.strip() for v in record):
                yield CsvRow(number, {}, "every field of the row is blank")
                continue
            if len(record) != width:
                yield CsvRow(
                    number,
                    {},
                    f"{len(record)} field(s) where the header has {width} "
                    f"(delimiter {_delimiter_name(self.delimiter)})",
                )
                continue
            yield CsvRow(number, dict(zip(self.header, record, strict=True)))

    def close(self) -> None:
        if self._text is not None:
            self._text.close()  # and the file under it
        self._binary.close()

    def __enter__(self) -> CsvFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _sniff(line: str) -> str:
    counts: dict[str, int] = dict.fromkeys(DELIMITERS, 0)
    quoted = False
    for char in line:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in counts:
            counts[char] += 1
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def _delimiter_name(delimiter: str) -> str:
    return {"\t": "tab", ",": "','", ";": "';'", "|": "'|'"}.get(delimiter, repr(delimiter))


def _encoding_name(encoding: str) -> str:
    name = codecs.lookup(encoding).name
    return "UTF-8" if name == "utf-8" else name

"""Firmographic enrichment: company facts looked up by e-mail/website domain.

Fit scoring needs company size, industry and country, which leads rarely type in. An
:class:`Enricher` answers them for a domain; the pipeline's enrich step asks each
configured enricher and marks the traits it fills with the enricher's name, so the lead's
profile always shows which values were *given* and which were *looked up*.

:class:`CsvFirmographics` is the built-in provider: a CSV the user exports from their CRM or
buys from a data vendor. It loads the whole file up front so a bad row stops the import at
start-up with ``file:line`` instead of failing half-way through a batch.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol, TextIO, runtime_checkable

from mqlengine.errors import ValidationError
from mqlengine.ingest.emailcheck import normalize_domain

ENRICHED_BY = "_enriched_by"
REQUIRED_COLUMNS = ("domain", "company", "industry", "employees", "country")
_RESERVED_KEYS = frozenset({"company", "country", ENRICHED_BY})
_HOSTNAME = re.compile(
    r"(?=.{1,253}$)(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)+[a-z0-9-]{2,63}"
)
_WHOLE_NUMBER = re.compile(r"\d{1,3}(?:,\d{3})+|\d+")


@runtime_checkable
class Enricher(Protocol):
    """Looks up traits for a company domain.

    ``enrich`` returns None when it knows nothing about the domain, otherwise a mapping of
    traits (nested mappings allowed, e.g. ``{"company": {"employees": 120}}``) that carries
    ``"_enriched_by": name`` so the caller can mark every value it takes from it. It must
    not raise for an unknown or odd domain.
    """

    name: str

    def enrich(self, domain: str) -> Mapping[str, object] | None: ...


class FirmographicsFileError(ValidationError, ValueError):
    """A firmographics file that cannot be used; the message names ``file:line``."""

    def __init__(self, path: str, line: int | None, reason: str) -> None:
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {reason}", details={"path": path, "line": line})
        self.path = path
        self.line = line
        self.reason = reason


class CsvFirmographics:
    """Firmographics from a CSV file with a header row.

    Required columns (any order, header names case-insensitive):
    ``domain,company,industry,employees,country``. Any other column is kept as an extra
    trait under its header name, as text. ``employees`` must be a whole number
    (``1200`` or ``1,200``); ranges such as ``51-200`` are rejected rather than guessed.
    Empty cells mean "unknown" and are left out of the result, so enrichment never
    overwrites a known trait with nothing. Rows whose cells are all empty are skipped.

    ``enrich(domain)`` matches case-insensitively, ignores ``www.`` and URL decoration, and
    falls back to parent domains (``eu.acme.com`` → ``acme.com``). It returns a fresh
    mapping of this shape, or None for an unknown domain::

        {
            "company": {"name": "Acme", "industry": "Software", "employees": 120},
            "country": "DE",
            "segment": "enterprise",        # extra columns, as text
            "_enriched_by": "csv",          # the enricher's name
        }

    Raises :class:`FirmographicsFileError` (a ``ValueError``) naming ``file:line`` for a
    missing header or column, a row with the wrong number of cells, an empty or malformed
    domain, a duplicate domain, or an ``employees`` value that is not a whole number;
    ``OSError`` if the file cannot be read.
    """

    def __init__(self, path: str | os.PathLike[str], *, name: str = "csv") -> None:
        self.name = name
        self.path = Path(path)
        self._rows = _load(self.path)

    def __len__(self) -> int:
        return len(self._rows)

    def enrich(self, domain: str) -> Mapping[str, object] | None:
        labels = normalize_domain(domain).split(".")
        for i in range(max(len(labels) - 1, 1)):
            row = self._rows.get(".".join(labels[i:]))
            if row is not None:
                return _shape(row, self.name)
        return None


def _shape(row: Mapping[str, str | int], name: str) -> dict[str, object]:
    company = {
        key: row[column]
        for key, column in (
            ("name", "company"),
            ("industry", "industry"),
            ("employees", "employees"),
        )
        if column in row
    }
    result: dict[str, object] = {}
    if company:
        result["company"] = company
    if "country" in row:
        result["country"] = row["country"]
    result.update({k: v for k, v in row.items() if k not in REQUIRED_COLUMNS})
    result[ENRICHED_BY] = name
    return result


def _load(path: Path) -> dict[str, dict[str, str | int]]:
    where = str(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return _read(handle, where)
    except UnicodeDecodeError as exc:
        raise FirmographicsFileError(where, None, f"not UTF-8 text ({exc.reason})") from exc
    except csv.Error as exc:
        raise FirmographicsFileError(where, None, f"not readable as CSV: {exc}") from exc


def _read(handle: TextIO, where: str) -> dict[str, dict[str, str | int]]:
    reader = csv.reader(handle)
    header = next(reader, None)
    if header is None:
        raise FirmographicsFileError(where, 1, "empty file: expected a header row")
    columns = [cell.strip().lower() for cell in header]
    _check_header(columns, where)

    rows: dict[str, dict[str, str | int]] = {}
    first_seen: dict[str, int] = {}
    for cells in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(columns):
            raise FirmographicsFileError(
                where, line, f"expected {len(columns)} cells like the header, got {len(cells)}"
            )
        values = {col: cell.strip() for col, cell in zip(columns, cells, strict=True)}
        domain = _parse_domain(values["domain"], where, line)
        if domain in first_seen:
            raise FirmographicsFileError(
                where, line, f"duplicate domain {domain!r} (first on line {first_seen[domain]})"
            )
        first_seen[domain] = line
        row: dict[str, str | int] = {k: v for k, v in values.items() if v and k != "domain"}
        if "employees" in row:
            row["employees"] = _parse_employees(values["employees"], where, line)
        rows[domain] = row
    return rows


def _check_header(columns: list[str], where: str) -> None:
    for index, column in enumerate(columns, start=1):
        if not column:
            raise FirmographicsFileError(where, 1, f"header column {index} has no name")
    duplicates = sorted({c for c in columns if columns.count(c) > 1})
    if duplicates:
        raise FirmographicsFileError(
            where, 1, f"duplicate header column(s): {', '.join(duplicates)}"
        )
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise FirmographicsFileError(
            where,
            1,
            f"missing required column(s): {', '.join(missing)} "
            f"(the header must name {','.join(REQUIRED_COLUMNS)})",
        )
    reserved = sorted((set(columns) - set(REQUIRED_COLUMNS)) & _RESERVED_KEYS)
    if reserved:
        raise FirmographicsFileError(where, 1, f"column name(s) reserved: {', '.join(reserved)}")


def _parse_domain(cell: str, where: str, line: int) -> str:
    if not cell:
        raise FirmographicsFileError(where, line, "domain is empty")
    if "@" in cell and "://" not in cell:
        raise FirmographicsFileError(where, line, f"domain {cell!r} looks like an e-mail address")
    domain = normalize_domain(cell)
    if not _HOSTNAME.fullmatch(domain):
        raise FirmographicsFileError(where, line, f"domain {cell!r} is not a valid domain name")
    return domain


def _parse_employees(cell: str, where: str, line: int) -> int:
    if not _WHOLE_NUMBER.fullmatch(cell):
        raise FirmographicsFileError(
            where, line, f"employees must be a whole number like 120 or 1,200, got {cell!r}"
        )
    return int(cell.replace(",", ""))

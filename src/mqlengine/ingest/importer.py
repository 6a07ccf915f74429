"""Bulk import: JSONL of Segment messages, CSV of persons, CSV of events.

Rows are turned into Segment messages and go through the same pipeline as the HTTP API, in
batches (one transaction each). Bad rows are reported with their row number and reason
while good rows load; messages without an id get a content hash, so importing the same
file twice adds nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from mqlengine.domain.consent import ConsentValueError, is_consent_field, parse_consent
from mqlengine.errors import ValidationError
from mqlengine.ingest.csvread import (
    CsvEncodingError,
    CsvFile,
    CsvOptions,
    RowProblem,
    coerce_value,
    parse_datetime,
)
from mqlengine.ingest.messages import content_message_id
from mqlengine.ingest.pipeline import BatchResult, Pipeline
from mqlengine.store.db import Database

BATCH = 1000
Progress = Callable[[int], None]


@dataclass
class ImportReport:
    rows: int = 0
    accepted: int = 0
    duplicates: int = 0
    problems: list[RowProblem] = field(default_factory=list)
    persons: set[int] = field(default_factory=set)
    mqls: int = 0
    committed_rows: int = 0


def parse_mapping(pairs: list[str]) -> dict[str, str]:
    """``target=Source Column`` pairs → {target: source}."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        target, sep, source = pair.partition("=")
        if not sep or not target.strip() or not source.strip():
            raise ValidationError(f"bad column mapping {pair!r}: use target=Source Column")
        mapping[target.strip()] = source.strip()
    return mapping


def _set_path(data: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    for part in parts[:-1]:
        data = data.setdefault(part, {})
    data[parts[-1]] = value


def _check_targets(targets: Iterator[str] | list[str]) -> None:
    """A dotted target cannot also be the parent of another (``company`` and
    ``company.size``): one value cannot be both text and an object."""
    given = sorted(set(targets))
    for target in given:
        for other in given:
            if other.startswith(target + "."):
                raise ValidationError(
                    f"column mapping: '{target}' and '{other}' cannot both be set "
                    f"('{target}' would be a value and an object)"
                )


def _coerce(value: str, column: str = "", options: CsvOptions | None = None) -> Any:
    return coerce_value(value, column=column, decimal=(options or CsvOptions()).decimal)


def _timestamp(value: str, options: CsvOptions, now: datetime | None) -> str:
    """A CSV time as ISO 8601 UTC (read in the file's zone); ValueError when it is none or
    lies in the future."""
    return parse_datetime(value, tz=options.zone, name="timestamp", now=now).isoformat()


def jsonl_messages(path: Path) -> Iterator[tuple[int, Any, str | None]]:
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield number, orjson.loads(line), None
            except orjson.JSONDecodeError as error:
                yield number, None, f"invalid JSON: {error}"


PERSON_ID_FIELDS = ("user_id", "email")


def csv_person_messages(
    path: Path,
    mapping: Mapping[str, str],
    options: CsvOptions | None = None,
    now: datetime | None = None,
) -> Iterator[tuple[int, Any, str | None]]:
    """Each row → an ``identify``. Targets: user_id, email, timestamp, any trait (dotted)."""
    options = options or CsvOptions()
    with CsvFile(path, options) as reader:
        columns = reader.header
        effective = dict(mapping) or {c: c for c in columns if c}
        _check_targets(list(effective))
        unknown = [src for src in effective.values() if src not in columns]
        if unknown:
            raise ValidationError(
                f"{path}: no column(s) {', '.join(unknown)} (has: {', '.join(columns)})"
            )
        for record in reader.rows():
            number, row = record.number, record.values
            if record.problem is not None:
                yield number, None, record.problem
                continue
            traits: dict[str, Any] = {}
            user_id = timestamp = None
            try:
                for target, source in effective.items():
                    text = row.get(source) or ""
                    if target == "timestamp":
                        timestamp = _timestamp(text, options, now) if text.strip() else None
                        continue
                    value = _coerce(text, target, options)
                    if value is None:
                        continue
                    if is_consent_field(target):  # an unreadable consent is no consent
                        try:
                            value = parse_consent(value)
                        except ConsentValueError as error:
                            raise ValueError(f"{target} (column {source!r}): {error}") from None
                    if target == "user_id":
                        user_id = str(value)
                    else:
                        _set_path(traits, target, value)
            except ValueError as error:
                yield number, None, str(error)
                continue
            if user_id is None and isinstance(traits.get("email"), str):
                user_id = str(traits["email"]).strip().lower()
            if not user_id:
                yield number, None, "no user_id or email in this row"
                continue
            message: dict[str, Any] = {"type": "identify", "userId": user_id, "traits": traits}
            if timestamp:
                message["timestamp"] = timestamp
            message["messageId"] = "csv-" + content_message_id(message)
            yield number, message, None


def csv_event_messages(
    path: Path,
    mapping: Mapping[str, str],
    options: CsvOptions | None = None,
    now: datetime | None = None,
) -> Iterator[tuple[int, Any, str | None]]:
    """Each row → a ``track``. Targets: user_id or email, event, timestamp, message_id,
    ``properties.X``; unmapped columns become properties."""
    options = options or CsvOptions()
    with CsvFile(path, options) as reader:
        columns = reader.header
        effective = dict(mapping)
        for name in ("user_id", "email", "event", "timestamp", "message_id", "anonymous_id"):
            if name not in effective and name in columns:
                effective[name] = name
        unknown = [src for src in effective.values() if src not in columns]
        if unknown:
            raise ValidationError(
                f"{path}: no column(s) {', '.join(unknown)} (has: {', '.join(columns)})"
            )
        _check_targets(
            [t.removeprefix("properties.") for t in effective if t.startswith("properties.")]
        )
        if "event" not in effective:
            raise ValidationError(f"{path}: map a column to 'event' (e.g. --map event=Activity)")
        used = set(effective.values())
        for record in reader.rows():
            number, row = record.number, record.values
            if record.problem is not None:
                yield number, None, record.problem
                continue
            values = {t: (row.get(s) or "").strip() for t, s in effective.items()}
            properties: dict[str, Any] = {}
            for target, raw in values.items():
                if target.startswith("properties.") and raw:
                    name = target.removeprefix("properties.")
                    _set_path(properties, name, _coerce(raw, name, options))
            for column in columns:
                if column and column not in used and row.get(column):
                    properties[column] = _coerce(row[column], column, options)
            user_id = values.get("user_id") or (values.get("email") or "").lower() or None
            anonymous_id = values.get("anonymous_id") or None
            if not user_id and not anonymous_id:
                yield number, None, "no user_id, email or anonymous_id in this row"
                continue
            if not values.get("event"):
                yield number, None, "empty event name"
                continue
            message: dict[str, Any] = {
                "type": "track",
                "event": values["event"],
                "properties": properties,
            }
            if user_id:
                message["userId"] = user_id
            if anonymous_id:
                message["anonymousId"] = anonymous_id
            if values.get("email"):
                message["context"] = {"traits": {"email": values["email"]}}
            if values.get("timestamp"):
                try:
                    message["timestamp"] = _timestamp(values["timestamp"], options, now)
                except ValueError as error:
                    yield number, None, str(error)
                    continue
            message["messageId"] = values.get("message_id") or "csv-" + content_message_id(message)
            yield number, message, None


def file_rows(
    path: Path,
    kind: str = "auto",
    mapping: dict[str, str] | None = None,
    options: CsvOptions | None = None,
    now: datetime | None = None,
) -> Iterator[tuple[int, Any, str | None]]:
    """The rows of an import file as (line, message, problem): ``kind`` is ``jsonl``,
    ``persons`` or ``events`` (CSV), or ``auto`` (JSONL by extension; a CSV must say)."""

    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if kind == "auto":
        if path.suffix not in (".jsonl", ".ndjson", ".json"):
            raise ValidationError(f"{path}: say what the CSV holds with --kind persons or events")
        kind = "jsonl"
    if kind == "jsonl":
        return jsonl_messages(path)
    if kind == "persons":
        return csv_person_messages(path, mapping or {}, options, now)
    if kind == "events":
        return csv_event_messages(path, mapping or {}, options, now)
    raise ValidationError(f"unknown import kind {kind!r} (auto, jsonl, persons or events)")


def run_import(
    database: Database,
    pipeline: Pipeline,
    rows: Iterator[tuple[int, Any, str | None]],
    *,
    now: datetime,
    progress: Progress | None = None,
    batch_size: int = BATCH,
) -> ImportReport:
    report = ImportReport()
    batch: list[tuple[int, Any]] = []

    def flush() -> None:
        if not batch:
            return
        with database.begin() as connection:
            result: BatchResult = pipeline.ingest(
                connection, [m for _, m in batch], now=now, score_as_of="event"
            )
        report.accepted += result.accepted
        report.duplicates += result.duplicates
        report.persons |= result.persons
        report.mqls += sum(1 for _, c in result.stage_changes if c.to_stage.value == "mql")
        for rejection in result.rejected:
            row_number = batch[rejection.index][0]
            where = f"{rejection.field}: " if rejection.field else ""
            report.problems.append(RowProblem(row_number, where + rejection.reason))
        report.committed_rows += len(batch)
        if progress:
            progress(len(batch))
        batch.clear()

    try:
        for number, message, problem in rows:
            report.rows += 1
            if problem is not None:
                report.problems.append(RowProblem(number, problem))
                if progress:
                    progress(1)
                continue
            batch.append((number, message))
            if len(batch) >= batch_size:
                flush()
    except CsvEncodingError as error:
        raise error.after(report.committed_rows) from None
    flush()
    report.problems.sort(key=lambda p: p.row)
    return report

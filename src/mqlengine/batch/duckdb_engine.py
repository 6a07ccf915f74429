"""The DuckDB batch engine: the definition compiled to SQL (:mod:`.sqlcompile`), run over
the batch input's Arrow tables in one query. No Python runs per person or per event."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import duckdb
import pyarrow as pa

from mqlengine.batch.engine import CARDS_SCHEMA, BatchInput
from mqlengine.batch.sqlcompile import SqlCompiler
from mqlengine.domain.rules import Definition

DEFAULT_MEMORY_LIMIT = "2GB"


class DuckDBEngine:
    """Scores with DuckDB. ``threads``: DuckDB's worker threads (default: the CPUs);
    ``memory_limit``: what DuckDB may hold before it spills to disk (default 2 GB, so a
    rescore's peak stays bounded whatever the machine; DuckDB's own default is 80 % of
    RAM)."""

    name = "duckdb"
    scores_beside_writes = True  # runs outside the GIL: a rescore scores ahead of its writes

    def __init__(
        self, *, threads: int | None = None, memory_limit: str | None = DEFAULT_MEMORY_LIMIT
    ) -> None:
        self.threads = threads or os.cpu_count() or 1
        self.memory_limit = memory_limit
        self._compiled: dict[str, SqlCompiler] = {}

    def compiler(self, definition: Definition) -> SqlCompiler:
        found = self._compiled.get(definition.content_hash)
        if found is None or found.definition is not definition:
            found = self._compiled[definition.content_hash] = SqlCompiler(definition)
        return found

    def connect(self) -> duckdb.DuckDBPyConnection:
        connection = duckdb.connect(config={"threads": self.threads})
        connection.execute("SET TimeZone = 'UTC'")
        if self.memory_limit:
            connection.execute(f"SET memory_limit = '{self.memory_limit}'")
        return connection

    def score(self, definition: Definition, data: BatchInput, as_of: datetime) -> pa.Table:
        moment = as_of.replace(tzinfo=UTC) if as_of.tzinfo is None else as_of
        sql = self.compiler(definition).query(moment, persons="b_persons", events="b_events")
        connection = self.connect()
        try:
            connection.register("b_persons", data.persons)
            connection.register("b_events", data.events)
            table = connection.sql(sql).to_arrow_table()
        finally:
            connection.close()
        return table.cast(CARDS_SCHEMA)

    def score_sql(
        self,
        connection: duckdb.DuckDBPyConnection,
        definition: Definition,
        as_of: datetime,
        *,
        persons: str,
        events: str,
    ) -> pa.Table:
        """Score relations already known to ``connection`` (tables, views, Parquet
        scans), e.g. one chunk of persons of a large export."""
        sql = self.compiler(definition).query(as_of, persons=persons, events=events)
        return connection.sql(sql).to_arrow_table().cast(CARDS_SCHEMA)

"""Batch rescoring throughput on the demo data set: persons/s and events/s.

Builds the demo history once (into a temporary SQLite file, or $MQL_BENCH_DATABASE_URL),
then times full rescoring passes: a cold pass (fresh Scorer, events read from the store)
and a warm pass (matching memo populated), plus pure in-memory scoring without the store.
"""

from __future__ import annotations

import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select

from bench.common import report
from mqlengine.batch.rescore import rescore_all
from mqlengine.demo.run import run_demo
from mqlengine.domain.scoring import Scorer
from mqlengine.ingest import qualify
from mqlengine.settings import Settings
from mqlengine.store import repo
from mqlengine.store.tables import events, persons
from mqlengine.wiring import Wiring


def main() -> None:
    persons_count = int(os.environ.get("MQL_BENCH_PERSONS", "5000"))
    with tempfile.TemporaryDirectory() as tmp:
        url = os.environ.get("MQL_BENCH_DATABASE_URL") or f"sqlite:///{Path(tmp) / 'bench.db'}"
        engine = Wiring(Settings(database_url=url, definition_path=Path(tmp) / "none.yaml"))
        now = datetime.now(UTC).replace(microsecond=0)
        started = time.perf_counter()
        run_demo(engine, now=now, persons_count=persons_count)
        demo_seconds = time.perf_counter() - started
        definition = engine.definition().definition
        with engine.db.read() as connection:
            n_persons = connection.execute(
                select(func.count()).select_from(persons).where(persons.c.merged_into.is_(None))
            ).scalar_one()
            n_events = connection.execute(
                select(func.count())
                .select_from(events)
                .where(events.c.type.in_(("track", "page", "screen")))
            ).scalar_one()
        rows = []
        for label in ("cold", "warm"):
            if label == "cold":
                qualify._SCORERS.clear()
            started = time.perf_counter()
            rescore_all(engine.db, definition, now=now)
            seconds = time.perf_counter() - started
            rows.append(
                {
                    "pass": f"store {label}",
                    "persons": n_persons,
                    "events": n_events,
                    "seconds": seconds,
                    "persons/s": n_persons / seconds,
                    "events/s": n_events / seconds,
                }
            )
        with engine.db.read() as connection:
            ids = [
                r.id
                for r in connection.execute(
                    select(persons.c.id).where(persons.c.merged_into.is_(None))
                )
            ]
            profiles = {
                pid: row["profile"] for pid, row in repo.persons_by_id(connection, ids).items()
            }
            history = repo.load_events(connection, ids)
        scorer = Scorer(definition)
        for label in ("cold", "warm"):
            started = time.perf_counter()
            for pid in ids:
                scorer.score(profiles[pid] or {}, history.get(pid, []), now)
            seconds = time.perf_counter() - started
            rows.append(
                {
                    "pass": f"in-memory {label}",
                    "persons": n_persons,
                    "events": n_events,
                    "seconds": seconds,
                    "persons/s": n_persons / seconds,
                    "events/s": n_events / seconds,
                }
            )
        report(
            "rescore",
            rows,
            notes=f"demo history built in {demo_seconds:.1f} s; database {engine.db.dialect}",
        )


if __name__ == "__main__":
    main()

"""What the live likelihood model costs per person scored: rescoring the demo with and
without a live model (CPU and wall time per person; the overhead is the difference).

Builds a demo history (``MQL_BENCH_PERSONS``, default 1500) in a temporary SQLite file,
trains a model on it (label: reached SAL within 30 days of becoming an MQL), then times
alternating full rescoring passes without and with the model live.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import report
from mqlengine.batch.rescore import rescore_all
from mqlengine.demo.run import run_demo
from mqlengine.domain.rules import PredictConfig
from mqlengine.predict import registry
from mqlengine.predict.trainset import train_from_store
from mqlengine.settings import Settings
from mqlengine.store.tables_predict import models
from mqlengine.wiring import Wiring


def main() -> None:
    persons_count = int(os.environ.get("MQL_BENCH_PERSONS", "1500"))
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        engine = Wiring(Settings(database_url=url, definition_path=Path(tmp) / "none.yaml"))
        now = datetime.now(UTC).replace(microsecond=0)
        run_demo(engine, now=now, persons_count=persons_count)
        definition = replace(
            engine.definition().definition,
            predict=PredictConfig(label_reached="sal", within_days=30, min_rows=50),
        )
        entry = train_from_store(engine.db, definition, now=now, budget_s=30)
        rows: list[dict[str, Any]] = []
        for rounds in range(2):
            for live in (False, True):
                with engine.db.begin() as connection:
                    connection.execute(models.update().values(status="candidate"))
                    if live:
                        registry.promote(connection, entry.version, now=now)
                cpu, wall = time.process_time(), time.perf_counter()
                result = rescore_all(engine.db, definition, now=now)
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
                rows.append(
                    {
                        "pass": f"{'live model' if live else 'no model'} #{rounds + 1}",
                        "persons": result.persons,
                        "cpu_us_per_person": round(cpu / result.persons * 1e6, 1),
                        "wall_us_per_person": round(wall / result.persons * 1e6, 1),
                    }
                )
        base = [r for r in rows if r["pass"].startswith("no model")]
        with_model = [r for r in rows if r["pass"].startswith("live model")]
        overhead = min(r["cpu_us_per_person"] for r in with_model) - min(
            r["cpu_us_per_person"] for r in base
        )
        for row in rows:
            print(row)
        print(f"overhead: {overhead:.1f} µs CPU per person (best of each)")
        report(
            "likelihood_serving",
            rows,
            notes=f"overhead {overhead:.1f} µs CPU per person; chunks of 1000 persons",
        )


if __name__ == "__main__":
    main()

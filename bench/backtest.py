"""Backtest duration on the demo data set with the python engine (seconds, CPU seconds).

Builds the demo history (default size, or $MQL_BENCH_PERSONS), then backtests the live
definition against one with a threshold 20 points higher over the last $MQL_BENCH_DAYS
days (default 90) on the daily grid.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.common import report
from mqlengine.batch.backtest import backtest, default_window
from mqlengine.demo.run import run_demo
from mqlengine.settings import Settings
from mqlengine.wiring import Wiring


def main() -> None:
    persons_count = int(os.environ.get("MQL_BENCH_PERSONS", "5000"))
    days = int(os.environ.get("MQL_BENCH_DAYS", "90"))
    with tempfile.TemporaryDirectory() as tmp:
        url = os.environ.get("MQL_BENCH_DATABASE_URL") or f"sqlite:///{Path(tmp) / 'bench.db'}"
        wiring = Wiring(Settings(database_url=url, definition_path=Path(tmp) / "none.yaml"))
        now = datetime.now(UTC).replace(microsecond=0)
        run_demo(wiring, now=now, persons_count=persons_count)
        live = wiring.definition().definition
        qualify = dataclasses.replace(live.qualify, threshold=live.qualify.threshold + 20)
        candidate = dataclasses.replace(live, version="higher", qualify=qualify)
        start, end = default_window(now, days)
        wall, cpu = time.perf_counter(), time.process_time()
        result = backtest(wiring.db, live, candidate, start=start, end=end)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        report(
            "backtest",
            [
                {
                    "engine": "python",
                    "days": result["days"],
                    "persons": persons_count,
                    "seconds": wall,
                    "cpu seconds": cpu,
                    "cpu ms per day and definition": 1000 * cpu / (2 * result["days"]),
                    "baseline MQLs": result["baseline"]["mqls"],
                    "candidate MQLs": result["candidate"]["mqls"],
                }
            ],
            notes=f"database {wiring.db.dialect}",
        )


if __name__ == "__main__":
    main()

"""Building the demo: `mql demo`'s own work (generate, replay day by day, rescore) timed.

Runs :func:`mqlengine.demo.run.run_demo` into a fresh SQLite file, in this process, and
prints wall time, CPU time (this process), peak RSS, messages per second (wall and CPU),
the demo's own phase times, and the RSS seen at every tenth simulated day (what grows with
the days). The machine may be shared: read CPU seconds next to wall seconds.

    python -m bench.demo_build [PERSONS] [--days 180] [--seed 7]

PERSONS defaults to 10,000 (or $MQL_BENCH_DEMO_PERSONS).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.common import report
from mqlengine.demo.run import run_demo
from mqlengine.settings import Settings
from mqlengine.wiring import Wiring

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)


def rss_mb() -> tuple[float, float]:
    """(current RSS, peak RSS) of this process in MB, from /proc (Linux)."""
    current = peak = 0.0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            current = int(line.split()[1]) / 1024
        elif line.startswith("VmHWM:"):
            peak = int(line.split()[1]) / 1024
    return current, peak


def build(persons: int, days: int, seed: int) -> dict[str, object]:
    samples: list[str] = []

    def progress(_kind: str, done: int, total: int) -> None:
        if done % 10 == 0 or done == total:
            current, _ = rss_mb()
            samples.append(f"{done}:{current:.0f}")

    with tempfile.TemporaryDirectory(prefix="mql-demo-bench-") as folder:
        url = f"sqlite:///{Path(folder) / 'demo.db'}"
        wiring = Wiring(Settings.from_env({**os.environ, "MQL_DATABASE_URL": url}))
        wall, cpu = time.perf_counter(), time.process_time()
        result = run_demo(
            wiring, now=NOW, persons_count=persons, days=days, seed=seed, progress=progress
        )
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        wiring.close()
        size = sum(f.stat().st_size for f in Path(folder).iterdir()) / 2**20
    _, peak = rss_mb()
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RSS (MB) by simulated day:", " ".join(samples))
    return {
        "persons": result.persons,
        "messages": result.messages,
        "wall s": wall,
        "cpu s": cpu,
        "peak RSS MB": max(peak, maxrss),
        "msgs/s wall": result.messages / wall,
        "msgs/s cpu": result.messages / cpu,
        "generate s": result.seconds.get("generate", 0.0),
        "ingest s": result.seconds.get("ingest", 0.0),
        "rescore s": result.seconds.get("rescore", 0.0),
        "db MB": size,
        "mqls": result.mqls,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default = int(os.environ.get("MQL_BENCH_DEMO_PERSONS", "10000"))
    parser.add_argument("persons", nargs="?", type=int, default=default)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv if argv is not None else [])
    row = build(args.persons, args.days, args.seed)
    report(
        f"demo_build_{args.persons}",
        [row],
        notes="CPU s is this process's; the machine may be shared (wall s is then higher).",
    )


if __name__ == "__main__":
    main(sys.argv[1:])

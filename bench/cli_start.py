"""How fast simple `mql` commands start: wall and CPU time of each over N runs, and what the
imports of one of them cost.

Runs the installed ``mql`` (beside this interpreter) as a child process: ``--help``;
``report funnel`` and ``leads`` on an empty store (``mql db upgrade`` first); ``report
funnel`` where there is no database (the error path). CPU time is the child's user + system
time (``os.wait4``), so a loaded machine shows up in the wall time more than in the CPU time.
Then ``python -X importtime`` of ``report funnel`` on the empty store, summed per package
(self time; mqlengine by module).

    python -m bench.cli_start [--runs 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import report

COMMANDS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("mql --help", "empty", ("--help",)),
    ("mql report funnel (empty store)", "empty", ("report", "funnel")),
    ("mql leads (empty store)", "empty", ("leads",)),
    ("mql report funnel (no database)", "none", ("report", "funnel")),
)


def _mql() -> list[str]:
    script = Path(sys.executable).with_name("mql")
    return [str(script)] if script.exists() else [sys.executable, "-m", "mqlengine"]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MQL_")}
    env["COLUMNS"] = "200"
    return env


def run_once(args: list[str], cwd: Path) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (user + system) and exit code of one child process."""
    started = time.perf_counter()
    child = subprocess.Popen(
        args, cwd=cwd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_utime + usage.ru_stime, child.returncode


def import_costs(cwd: Path, args: tuple[str, ...], top: int) -> list[dict[str, Any]]:
    """Self import time per package (mqlengine per module), the ``top`` largest."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "mqlengine", *args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    costs: Counter[str] = Counter()
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, _, name = line.removeprefix("import time:").split("|")
        module = name.strip()
        parts = module.split(".")
        key = ".".join(parts[:3]) if parts[0] == "mqlengine" else parts[0]
        costs[key] += int(own)
    total = sum(costs.values())
    rows = [{"package": "(all imports)", "self ms": total / 1000}]
    rows += [{"package": name, "self ms": us / 1000} for name, us in costs.most_common(top)]
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--top", type=int, default=15, help="how many import costs to list")
    args = parser.parse_args(argv or [])
    mql = _mql()
    with tempfile.TemporaryDirectory(prefix="mql-bench-start-") as tmp:
        folders = {"empty": Path(tmp) / "empty", "none": Path(tmp) / "none"}
        for folder in folders.values():
            folder.mkdir()
        subprocess.run([*mql, "db", "upgrade"], cwd=folders["empty"], env=_env(), check=True)
        rows: list[dict[str, Any]] = []
        for label, where, command in COMMANDS:
            run_once([*mql, *command], folders[where])  # warm the file cache
            walls, cpus, codes = [], [], set()
            for _ in range(args.runs):
                wall, cpu, code = run_once([*mql, *command], folders[where])
                walls.append(wall * 1000)
                cpus.append(cpu * 1000)
                codes.add(code)
            rows.append(
                {
                    "command": label,
                    "exit": ",".join(map(str, sorted(codes))),
                    "wall ms (median)": statistics.median(walls),
                    "wall ms (min)": min(walls),
                    "CPU ms (median)": statistics.median(cpus),
                    "CPU ms (min)": min(cpus),
                }
            )
        costs = import_costs(folders["empty"], ("report", "funnel"), args.top)
    load = os.getloadavg()[0]
    report(
        "cli_start",
        rows,
        notes=f"{args.runs} runs each of {' '.join(mql)}; load average {load:.1f} on "
        f"{os.cpu_count()} CPUs (CPU time is the child's user + system time)",
    )
    report("cli_start_imports", costs, notes="python -X importtime: mql report funnel, empty store")


if __name__ == "__main__":
    main(sys.argv[1:])

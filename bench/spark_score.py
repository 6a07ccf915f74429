"""The Spark engine on 10,000,000 events in local mode: wall and CPU time, peak memory.

Generates a synthetic history to Parquet with vectorised Arrow (no Python loop per event),
scores it with :class:`SparkEngine` reading the Parquet files directly, and, on a sample
small enough for it, with the reference engine for a per-event ratio.

Sizes: ``MQL_BENCH_EVENTS`` (default 10,000,000), ``MQL_BENCH_PERSONS`` (default 500,000),
``MQL_BENCH_SAMPLE_EVENTS`` for the reference (default 200,000),
``MQL_BENCH_SPARK_MASTER`` (default ``local[*]``), ``MQL_BENCH_SPARK_MEMORY`` (driver, 2g).
"""

from __future__ import annotations

import json
import os
import resource
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bench.common import report
from mqlengine.batch.engine import EVENTS_SCHEMA, PERSONS_SCHEMA, BatchInput, PythonEngine
from mqlengine.definition.compiler import load_definition

EXAMPLE = Path(__file__).resolve().parents[1] / "src/mqlengine/definition/templates/mql.yaml"
AS_OF = datetime(2026, 6, 1, tzinfo=UTC)

NAMES = [
    "Page Viewed",
    "Demo Requested",
    "Trial Started",
    "Email Clicked",
    "Webinar Attended",
    "Form Submitted",
    "Signed Up",
    "Other",
]
PATHS = ["/pricing", "/docs/start", "/blog/x", "/", "/pricing/enterprise", "/careers"]
SENIORITY = ["vp", "c_level", "director", "manager", "individual", "student"]
DEPARTMENTS = ["marketing", "sales", "engineering", "revenue_operations", "hr"]
INDUSTRIES = ["software", "fintech", "retail", "ecommerce", "education"]


def _ints(count: int, low: int, high: int) -> pa.Array:
    """``count`` uniform integers in [low, high) (vectorised)."""
    scaled = pc.floor(pc.multiply(pc.random(count), float(high - low)))
    return pc.add(pc.cast(scaled, pa.int64()), low)


def _choice(count: int, weights: list[float]) -> pa.Array:
    """Indices drawn with the given weights (vectorised: cumulative thresholds)."""
    draws = pc.random(count)
    index = pa.array([0] * count, pa.int64()) if count else pa.array([], pa.int64())
    cumulative = 0.0
    for weight in weights[:-1]:
        cumulative += weight
        index = pc.add(index, pc.cast(pc.greater_equal(draws, cumulative), pa.int64()))
    return index


def generate(folder: Path, persons: int, events: int) -> tuple[Path, Path]:
    shapes = [
        json.dumps(
            {
                "email": f"p{i}@example{i % 7}.com",
                "seniority": SENIORITY[i % len(SENIORITY)],
                "department": DEPARTMENTS[i % len(DEPARTMENTS)],
                "company": {
                    "employees": (i * 7919) % 20_000 + 5,
                    "industry": INDUSTRIES[i % len(INDUSTRIES)],
                    "country": "US",
                },
            },
            sort_keys=True,
        )
        for i in range(512)
    ]
    persons_table = pa.table(
        {
            "person_id": pa.array(range(1, persons + 1), pa.int64()),
            "profile": pa.array(shapes).take(_ints(persons, 0, len(shapes))),
            "stage": pa.array(["lead", "mql", "nurture"]).take(_choice(persons, [0.85, 0.1, 0.05])),
            "recycled_at": pa.nulls(persons, pa.timestamp("us", tz="UTC")),
        },
        schema=PERSONS_SCHEMA,
    )
    end = int(AS_OF.timestamp() * 1_000_000)
    span = 180 * 86_400 * 1_000_000
    props = pa.array([json.dumps({"path": p}) for p in PATHS] + ["{}"])
    names = _choice(events, [0.55, 0.02, 0.02, 0.15, 0.03, 0.05, 0.03, 0.15])
    prop_index = pc.if_else(
        pc.equal(names, 0), _ints(events, 0, len(PATHS)), pa.scalar(len(PATHS), pa.int64())
    )
    events_table = pa.table(
        {
            "person_id": _ints(events, 1, persons + 1),
            "event_id": pc.cast(pa.array(range(events), pa.int64()), pa.string()),
            "name": pa.array(NAMES).take(names),
            "timestamp": pc.cast(
                pc.subtract(end, _ints(events, 0, span)), pa.timestamp("us", tz="UTC")
            ),
            "properties": props.take(prop_index),
        },
        schema=EVENTS_SCHEMA,
    )
    persons_path, events_path = folder / "persons.parquet", folder / "events.parquet"
    pq.write_table(persons_table, persons_path)
    pq.write_table(events_table, events_path, row_group_size=1_000_000)
    return persons_path, events_path


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _self_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    from mqlengine.batch.spark_engine import SparkEngine, to_cards
    from mqlengine.batch.sparkopts import make_session

    n_events = int(os.environ.get("MQL_BENCH_EVENTS", "10000000"))
    n_persons = int(os.environ.get("MQL_BENCH_PERSONS", "500000"))
    sample_events = int(os.environ.get("MQL_BENCH_SAMPLE_EVENTS", "200000"))
    master = os.environ.get("MQL_BENCH_SPARK_MASTER", "local[*]")
    memory = os.environ.get("MQL_BENCH_SPARK_MEMORY", "2g")
    definition = load_definition(EXAMPLE).definition
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        persons_path, events_path = generate(Path(tmp), n_persons, n_events)
        rows: list[dict[str, object]] = [
            {
                "step": "generate to Parquet",
                "seconds": time.perf_counter() - started,
                "events": n_events,
            }
        ]

        spark = make_session(
            master=master,
            conf={"spark.driver.memory": memory, "spark.sql.shuffle.partitions": "16"},
        )
        spark.sparkContext.setLogLevel("ERROR")
        engine = SparkEngine(spark)
        persons = spark.read.parquet(str(persons_path))
        events = spark.read.parquet(str(events_path))
        wall, cpu = time.perf_counter(), time.process_time()
        cards = to_cards(engine.score_frames(definition, persons, events, AS_OF))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        jvm = spark.sparkContext._jvm  # the local-mode JVM: its peak resident memory
        jvm_peak = _peak_rss_mb(int(jvm.java.lang.ProcessHandle.current().pid()))  # type: ignore[union-attr]
        rows.append(
            {
                "step": f"spark score ({master})",
                "seconds": wall,
                "events": n_events,
                "events_per_s": n_events / wall,
                "persons": cards.num_rows,
                "python_cpu_s": cpu,
                "jvm_peak_rss_mb": jvm_peak,
                "qualifies": int(pc.sum(cards.column("qualifies")).as_py() or 0),
            }
        )
        spark.stop()

        # the reference on a sample: persons whose ids are small enough
        events_all = pq.read_table(events_path)
        limit = max(1, int(n_persons * sample_events / n_events))
        sample = BatchInput(
            pq.read_table(persons_path).filter(pc.field("person_id") <= limit),
            events_all.filter(pc.field("person_id") <= limit),
        )
        wall, cpu = time.perf_counter(), time.process_time()
        PythonEngine().score(definition, sample, AS_OF)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        per_event = wall / max(1, sample.events.num_rows)
        rows.append(
            {
                "step": "reference engine (sample)",
                "seconds": wall,
                "events": sample.events.num_rows,
                "events_per_s": sample.events.num_rows / wall,
                "python_cpu_s": cpu,
                "projected_s_all_events": per_event * n_events,
            }
        )
        columns = list(dict.fromkeys(key for row in rows for key in row))
        report(
            "spark_score",
            [{key: row.get(key, "") for key in columns} for row in rows],
            notes=f"peak RSS of this Python process: {_self_peak_mb():.0f} MB (the JVM's is "
            "jvm_peak_rss_mb); the machine is shared, so wall times are noisy",
        )


if __name__ == "__main__":
    main()

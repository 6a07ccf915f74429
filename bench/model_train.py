"""Predictive model: training time and batch scoring speed on synthetic leads.

For each size (default 100,000 and 1,000,000 leads; `MQL_BENCH_MODEL_SIZES=10000,100000`
to change): `fit_best` with a fixed number of parameter sets (`MQL_BENCH_MODEL_TRIALS`,
default 2: LightGBM's defaults and the conservative prior; each is 3-fold cross-validated
with early stopping, then the model is refit twice and calibrated), wall and CPU seconds;
then batch scoring of 1,000,000 leads from a DataFrame (encoding + trees + calibration),
leads per second (wall and CPU) through LightGBM's own tree walk and through the compiled
trees (:mod:`mqlengine.predict.compiled`), each on one thread and on every core; the time
to compile the trees; and the process's peak resident memory so far.
"""

from __future__ import annotations

import os
import resource
import time

from bench.common import report
from mqlengine.predict import compiled, modeling, synthetic
from mqlengine.predict import metrics as m
from mqlengine.predict.modeling import FeatureFrame, fit_best

CATEGORICAL = ("seniority", "industry", "noise_cat")
CORES = modeling.PREDICT_THREADS
COMPILE_ROWS = compiled.COMPILE_ROWS


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    sizes = [int(s) for s in os.environ.get("MQL_BENCH_MODEL_SIZES", "100000,1000000").split(",")]
    trials = int(os.environ.get("MQL_BENCH_MODEL_TRIALS", "2"))
    score_n = int(os.environ.get("MQL_BENCH_MODEL_SCORE", "1000000"))
    scoring, y_scoring = synthetic.leads(score_n, seed=99, base=-4.0)
    rows = []
    for n in sizes:
        frame, y = synthetic.leads(n, seed=1, base=-4.0)
        wall, cpu = time.perf_counter(), time.process_time()
        model = fit_best(
            FeatureFrame(frame, CATEGORICAL), y, budget_s=1e9, seed=0, max_trials=trials
        )
        train_wall = time.perf_counter() - wall
        train_cpu = time.process_time() - cpu
        model.predict(scoring.head(1000))  # warm up
        booster = model.booster
        assert booster is not None
        leaves = booster.dump_model()["tree_info"]
        wall, cpu = time.perf_counter(), time.process_time()
        model.compiled()
        compile_wall, compile_cpu = time.perf_counter() - wall, time.process_time() - cpu
        speeds: dict[str, tuple[float, float]] = {}
        for path in ("lightgbm", "compiled"):
            compiled.COMPILE_ROWS = COMPILE_ROWS if path == "compiled" else score_n + 1
            for threads in sorted({1, CORES}):
                modeling.PREDICT_THREADS = threads
                wall, cpu = time.perf_counter(), time.process_time()
                p = model.predict(scoring)
                speeds[f"{path}_{threads}"] = (
                    time.perf_counter() - wall,
                    time.process_time() - cpu,
                )
        compiled.COMPILE_ROWS = COMPILE_ROWS
        modeling.PREDICT_THREADS = CORES
        row: dict[str, object] = {
            "leads": n,
            "positive_rate": round(float(y.mean()), 4),
            "trials": trials,
            "rounds": model.params["rounds"],
            "trees": booster.num_trees(),
            "leaves_per_tree": round(sum(t["num_leaves"] for t in leaves) / max(1, len(leaves)), 1),
            "train_wall_s": round(train_wall, 1),
            "train_cpu_s": round(train_cpu, 1),
            "compile_wall_s": round(compile_wall, 2),
            "compile_cpu_s": round(compile_cpu, 2),
            "scored": score_n,
        }
        for key, (score_wall, score_cpu) in speeds.items():
            row[f"{key}t_leads_per_s_wall"] = round(score_n / score_wall)
            row[f"{key}t_leads_per_s_cpu"] = round(score_n / score_cpu)
        row["auc_on_scored"] = round(m.roc_auc(y_scoring, p), 4)
        row["peak_rss_mb"] = round(peak_mb())
        rows.append(row)
        del frame, y, model, p
    report(
        "model_train",
        rows,
        notes="LightGBM trains on one thread (deterministic); scoring = DataFrame → matrix → "
        "trees → calibration, through LightGBM (lightgbm_*) or the compiled trees (compiled_*), "
        "on 1 or every core (_Nt_). Peak RSS is the process's high-water mark so far.",
    )


if __name__ == "__main__":
    main()

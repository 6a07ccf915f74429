"""Predictive model: training time and batch scoring speed on synthetic leads.

For each size (default 100,000 and 1,000,000 leads; `MQL_BENCH_MODEL_SIZES=10000,100000`
to change): `fit_best` with a fixed number of parameter sets (`MQL_BENCH_MODEL_TRIALS`,
default 2: LightGBM's defaults and the conservative prior; each is 3-fold cross-validated
with early stopping, then the model is refit twice and calibrated), wall and CPU seconds;
then batch scoring of 1,000,000 leads from a DataFrame (encoding + trees + calibration),
leads per second on one thread and on every core; and the process's peak resident memory
so far.
"""

from __future__ import annotations

import os
import resource
import time

from bench.common import report
from mqlengine.predict import metrics as m
from mqlengine.predict import modeling, synthetic
from mqlengine.predict.modeling import FeatureFrame, fit_best

CATEGORICAL = ("seniority", "industry", "noise_cat")


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
        speeds = {}
        for threads in (1, modeling.PREDICT_THREADS):
            modeling.PREDICT_THREADS = threads
            wall, cpu = time.perf_counter(), time.process_time()
            p = model.predict(scoring)
            speeds[threads] = (time.perf_counter() - wall, time.process_time() - cpu)
        score_wall, score_cpu = speeds[1]
        all_wall, _ = speeds[max(speeds)]
        rows.append(
            {
                "leads": n,
                "positive_rate": round(float(y.mean()), 4),
                "trials": trials,
                "rounds": model.params["rounds"],
                "train_wall_s": round(train_wall, 1),
                "train_cpu_s": round(train_cpu, 1),
                "scored": score_n,
                "score_leads_per_s_wall": round(score_n / score_wall),
                "score_leads_per_s_cpu": round(score_n / score_cpu),
                f"score_leads_per_s_{max(speeds)}_threads_wall": round(score_n / all_wall),
                "trees": model.booster.num_trees() if model.booster else 0,
                "auc_on_scored": round(m.roc_auc(y_scoring, p), 4),
                "peak_rss_mb": round(peak_mb()),
            }
        )
        del frame, y, model, p
    report(
        "model_train",
        rows,
        notes="LightGBM on one thread (deterministic); scoring = DataFrame → matrix → trees → "
        "calibration. Peak RSS is the process's high-water mark so far (sizes run in order).",
    )


if __name__ == "__main__":
    main()

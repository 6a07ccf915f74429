"""Synthetic leads with known drivers, for tests and benchmarks: seniority, company size
(a sweet spot), visits and industry drive the outcome; ``noise_*`` columns do not."""

from __future__ import annotations

import numpy as np
import pandas as pd

SENIORITY = ("intern", "staff", "manager", "director", "vp")
SENIORITY_EFFECT = (-1.5, -0.5, 0.3, 1.0, 1.6)
INDUSTRIES = ("software", "fintech", "retail", "health", "media", "energy", "travel", "other")
INDUSTRY_EFFECT = (1.0, 0.8, -0.7, 0.0, -0.3, 0.2, -1.0, -0.5)
DRIVERS = ("seniority", "employees", "visits", "industry")


def leads(
    n: int, *, seed: int = 0, base: float = -2.0, interaction: float = 0.0
) -> tuple[pd.DataFrame, np.ndarray]:
    """``n`` leads and their 0/1 outcomes; ``base`` moves the positive rate (−2 ≈ 38 %,
    −6 ≈ 3.5 %). ``interaction`` > 0 makes visits count for more the more senior the
    lead (and against it for interns and staff): what an additive model (naive Bayes,
    logistic regression) cannot express."""
    rng = np.random.default_rng(seed)
    s = rng.integers(0, len(SENIORITY), n)
    ind = rng.integers(0, len(INDUSTRIES), n)
    employees = np.round(np.exp(rng.normal(5.0, 1.6, n)))
    visits = rng.poisson(2.0, n).astype(np.float64)
    noise_num = rng.normal(0, 1, n)
    noise_cat = rng.integers(0, 6, n)
    size = np.log10(employees + 1)
    sweet = -1.2 * (size - 2.8) ** 2 + 0.8  # best around 600 employees
    logit = (
        base
        + np.asarray(SENIORITY_EFFECT)[s]
        + np.asarray(INDUSTRY_EFFECT)[ind]
        + sweet
        + 0.6 * np.minimum(visits, 8)
        + interaction * (s - 2) * (np.minimum(visits, 8) - 2)
    )
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.float64)
    employees_seen = employees.copy()
    employees_seen[rng.random(n) < 0.05] = np.nan  # some sizes unknown
    frame = pd.DataFrame(
        {
            "seniority": pd.Categorical.from_codes(s, categories=list(SENIORITY)),
            "employees": employees_seen,
            "visits": visits,
            "industry": pd.Categorical.from_codes(ind, categories=list(INDUSTRIES)),
            "noise_num": noise_num,
            "noise_cat": pd.Categorical.from_codes(
                noise_cat, categories=[f"c{i}" for i in range(6)]
            ),
        }
    )
    return frame, y

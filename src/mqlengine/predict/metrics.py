"""Metrics of a probability (or any score) against 0/1 outcomes: ranking (ROC AUC,
average precision), probability quality (log loss, Brier), the calibration curve, lift and
cumulative gains by decile, and precision/recall at a threshold."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

EPS = 1e-15


def _arrays(y: Any, p: Any) -> tuple[np.ndarray, np.ndarray]:
    y_arr = np.asarray(y, dtype=np.float64).ravel()
    p_arr = np.asarray(p, dtype=np.float64).ravel()
    if y_arr.shape != p_arr.shape:
        raise ValueError(f"{y_arr.size} outcomes but {p_arr.size} predictions")
    return y_arr, p_arr


def roc_auc(y: Any, p: Any) -> float:
    y_arr, p_arr = _arrays(y, p)
    if y_arr.min() == y_arr.max():
        return float("nan")
    return float(roc_auc_score(y_arr, p_arr))


def pr_auc(y: Any, p: Any) -> float:
    """Average precision (the area under the precision-recall curve, step-wise)."""
    y_arr, p_arr = _arrays(y, p)
    if y_arr.max() == 0:
        return float("nan")
    return float(average_precision_score(y_arr, p_arr))


def log_loss(y: Any, p: Any) -> float:
    y_arr, p_arr = _arrays(y, p)
    q = np.clip(p_arr, EPS, 1 - EPS)
    return float(-np.mean(y_arr * np.log(q) + (1 - y_arr) * np.log(1 - q)))


def brier(y: Any, p: Any) -> float:
    y_arr, p_arr = _arrays(y, p)
    return float(np.mean((p_arr - y_arr) ** 2))


def scores(y: Any, p: Any) -> dict[str, float]:
    """The four figures every model is compared by."""
    return {
        "roc_auc": roc_auc(y, p),
        "pr_auc": pr_auc(y, p),
        "log_loss": log_loss(y, p),
        "brier": brier(y, p),
    }


@dataclass(frozen=True)
class CalibrationBin:
    low: float
    high: float
    count: int
    mean_predicted: float
    observed: float  # share of positives in the bin


def calibration_curve(y: Any, p: Any, bins: int = 10) -> list[CalibrationBin]:
    """Predictions cut into ``bins`` equal-width bins over [0, 1]; empty bins are left out."""
    y_arr, p_arr = _arrays(y, p)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(p_arr, edges[1:-1], right=False), 0, bins - 1)
    out = []
    for b in range(bins):
        mask = index == b
        n = int(mask.sum())
        if n:
            out.append(
                CalibrationBin(
                    float(edges[b]),
                    float(edges[b + 1]),
                    n,
                    float(p_arr[mask].mean()),
                    float(y_arr[mask].mean()),
                )
            )
    return out


@dataclass(frozen=True)
class Decile:
    decile: int  # 1 = the highest scores
    count: int
    positives: int
    rate: float  # share of positives in the decile
    lift: float  # rate / overall rate
    cumulative_gain: float  # share of all positives found in deciles 1..decile


def deciles(y: Any, p: Any, groups: int = 10) -> list[Decile]:
    """Leads sorted by score, highest first, cut into ``groups`` near-equal groups (ties
    broken by the original order, so the figures are deterministic)."""
    y_arr, p_arr = _arrays(y, p)
    order = np.argsort(-p_arr, kind="stable")
    ranked = y_arr[order]
    total = ranked.sum()
    base = total / ranked.size if ranked.size else 0.0
    out = []
    found = 0.0
    for g, chunk in enumerate(np.array_split(ranked, groups), start=1):
        if chunk.size == 0:
            continue
        positives = float(chunk.sum())
        found += positives
        rate = positives / chunk.size
        out.append(
            Decile(
                g,
                int(chunk.size),
                int(positives),
                rate,
                rate / base if base else float("nan"),
                found / total if total else float("nan"),
            )
        )
    return out


@dataclass(frozen=True)
class AtThreshold:
    threshold: float
    flagged: int  # leads at or above the threshold
    precision: float
    recall: float


def at_threshold(y: Any, p: Any, threshold: float) -> AtThreshold:
    """Precision and recall of flagging every lead whose score is at least ``threshold``."""
    y_arr, p_arr = _arrays(y, p)
    flagged = p_arr >= threshold
    hits = float(y_arr[flagged].sum())
    total = float(y_arr.sum())
    n = int(flagged.sum())
    return AtThreshold(
        threshold,
        n,
        hits / n if n else float("nan"),
        hits / total if total else float("nan"),
    )


def threshold_for_share(p: Any, share: float) -> float:
    """The score that flags about ``share`` of the leads (the highest-scored first)."""
    p_arr = np.sort(np.asarray(p, dtype=np.float64).ravel())[::-1]
    if p_arr.size == 0 or share <= 0:
        return float("inf")
    k = min(p_arr.size, max(1, round(share * p_arr.size)))
    return float(p_arr[k - 1])

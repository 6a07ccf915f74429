"""A points scorecard learned from outcomes, written as a definition's ``fit:`` rules.

1. **Bins.** A number is cut at its quintiles (edges rounded to two significant digits);
   when the positive rate then runs one way, bins that break the trend are merged until it
   is monotone (kept only if that loses little information value); a missing value is a bin
   of its own. Categorical levels are grouped by their weight of evidence (WoE) into at most
   five groups. Columns whose information value is below 0.02 are left out.
2. **Weights.** A logistic regression on the bins' WoE (L2, C = 1).
3. **Points.** Each bin earns ``coefficient × WoE × 20 / ln 2`` points, rounded: 20 points
   double the odds. Bins that earn 0 points get no rule.

The result is a complete definition (``version``, ``fit``, ``qualify``) that ``mql
validate`` accepts; its fit score for a row is the scorecard's score.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import yaml
from sklearn.linear_model import LogisticRegression

from mqlengine.errors import ValidationError
from mqlengine.predict import metrics as m
from mqlengine.predict.baselines import bin_edges
from mqlengine.predict.modeling import one_thread

PDO = 20.0  # points to double the odds
FACTOR = PDO / math.log(2)
MIN_IV = 0.02
MAX_GROUPS = 5
SMOOTH = 0.5


@dataclass
class Bin:
    label: str
    low: float | None = None  # numeric: low <= x < high (None: open)
    high: float | None = None
    levels: tuple[str, ...] = ()  # categorical
    missing: bool = False
    woe: float = 0.0
    count: int = 0
    rate: float = 0.0
    points: int = 0

    def condition(self, trait: str) -> dict[str, Any]:
        if self.missing:
            return {"trait": trait, "exists": False}
        if self.levels:
            if len(self.levels) == 1:
                return {"trait": trait, "equals": self.levels[0]}
            return {"trait": trait, "in": list(self.levels)}
        parts = []
        if self.low is not None:
            parts.append({"trait": trait, "gte": self.low})
        if self.high is not None:
            parts.append({"trait": trait, "lt": self.high})
        return parts[0] if len(parts) == 1 else {"all": parts}


@dataclass
class Feature:
    name: str
    numeric: bool
    bins: list[Bin]
    iv: float
    coefficient: float = 0.0

    def index(self, values: pd.Series) -> np.ndarray:
        """Each row's bin (−1: a level never seen, which earns nothing)."""
        out = np.full(len(values), -1, dtype=np.int64)
        if self.numeric:
            numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
            for b, spec in enumerate(self.bins):
                if spec.missing:
                    mask = np.isnan(numbers)
                else:
                    mask = ~np.isnan(numbers)
                    if spec.low is not None:
                        mask &= numbers >= spec.low
                    if spec.high is not None:
                        mask &= numbers < spec.high
                out[mask] = b
        else:
            text = values.astype(object).to_numpy()
            lookup = {level: b for b, spec in enumerate(self.bins) for level in spec.levels}
            missing_bin = next((b for b, spec in enumerate(self.bins) if spec.missing), -1)
            for i, v in enumerate(text):
                if v is None or (isinstance(v, float) and math.isnan(v)):
                    out[i] = missing_bin
                else:
                    out[i] = lookup.get(str(v), -1)
        return out


@dataclass
class Scorecard:
    features: list[Feature]
    intercept: float
    base_points: int
    threshold: int
    label: str = ""
    notes: list[str] = field(default_factory=list)

    def points(self, source: pd.DataFrame) -> np.ndarray:
        total = np.zeros(len(source))
        for feature in self.features:
            idx = feature.index(source[feature.name])
            pts = np.array([b.points for b in feature.bins] + [0], dtype=np.float64)
            total += pts[idx]  # −1 picks the trailing 0
        return total

    def probability(self, source: pd.DataFrame) -> np.ndarray:
        z = (self.points(source) + self.base_points) / FACTOR
        return 1 / (1 + np.exp(-z))

    def definition(self, *, version: str, description: str) -> dict[str, Any]:
        rules = []
        used: set[str] = set()
        for feature in self.features:
            stem = re.sub(r"[^a-z0-9]+", "_", feature.name.lower()).strip("_") or "feature"
            if not stem[0].isalpha():
                stem = f"f_{stem}"
            for k, b in enumerate(feature.bins, start=1):
                if b.points == 0:
                    continue
                rule_id = f"{stem[:56]}_{k}"
                while rule_id in used:
                    rule_id += "_x"
                used.add(rule_id)
                rules.append(
                    {
                        "id": rule_id,
                        "when": b.condition(feature.name),
                        "points": b.points,
                        "description": (
                            f"{feature.name} {b.label}: {b.count} rows, "
                            f"{b.rate:.1%} positive, WoE {b.woe:+.2f}"
                        ),
                    }
                )
        return {
            "version": version,
            "description": description,
            "fit": {"rules": rules},
            "qualify": {"threshold": self.threshold},
        }

    def yaml(self, *, version: str, description: str, header: str = "") -> str:
        body = yaml.safe_dump(
            self.definition(version=version, description=description),
            sort_keys=False,
            allow_unicode=True,
            width=100,
        )
        return header + body


def _woe(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, float]:
    """WoE per bin (smoothed) and the feature's information value."""
    p = (pos + SMOOTH) / (pos.sum() + SMOOTH * len(pos))
    q = (neg + SMOOTH) / (neg.sum() + SMOOTH * len(neg))
    woe = np.log(p / q)
    return woe, float(np.sum((p - q) * woe))


def _counts(groups: np.ndarray, y: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    pos = np.bincount(groups, weights=y, minlength=k)
    tot = np.bincount(groups, minlength=k).astype(np.float64)
    return pos, tot - pos


def _numeric_bins(values: np.ndarray, y: np.ndarray) -> tuple[list[Bin], float]:
    present = ~np.isnan(values)
    edges = bin_edges(values)
    k = len(edges) + 1
    groups = np.searchsorted(np.asarray(edges), values[present], side="right")
    pos, neg = _counts(groups, y[present], k)
    spans: list[list[int]] = [[i] for i in range(k)]

    def rates(sp: list[list[int]]) -> list[float]:
        return [(pos[s].sum() + SMOOTH) / (pos[s].sum() + neg[s].sum() + 2 * SMOOTH) for s in sp]

    _, iv_raw = _woe(pos, neg)
    # pool adjacent violators in the direction of the overall trend
    corr = np.corrcoef(np.arange(k), rates(spans))[0, 1] if k > 2 else 1.0
    direction = 1.0 if (math.isnan(corr) or corr >= 0) else -1.0
    merged = [list(s) for s in spans]
    changed = True
    while changed and len(merged) > 1:
        changed = False
        r = rates(merged)
        for i in range(len(merged) - 1):
            if (r[i + 1] - r[i]) * direction < 0:
                merged[i] = merged[i] + merged.pop(i + 1)
                changed = True
                break
    mpos = np.array([pos[s].sum() for s in merged])
    mneg = np.array([neg[s].sum() for s in merged])
    _, iv_mono = _woe(mpos, mneg)
    if iv_mono >= 0.8 * iv_raw:
        spans = merged
    bins = []
    for s in spans:
        low = None if s[0] == 0 else edges[s[0] - 1]
        high = None if s[-1] == k - 1 else edges[s[-1]]
        label = (
            "all"
            if low is None and high is None
            else f"< {high:g}"
            if low is None
            else f"≥ {low:g}"
            if high is None
            else f"{low:g} to < {high:g}"
        )
        bins.append(Bin(label, low=low, high=high))
    if (~present).any():
        bins.append(Bin("missing", missing=True))
    return bins, 0.0


def _categorical_bins(values: pd.Series, y: np.ndarray) -> list[Bin]:
    text = values.astype(object)
    present = text.notna().to_numpy()
    levels = sorted({str(v) for v in text[present]})
    codes = pd.Categorical(text[present].astype(str), categories=levels).codes
    pos, neg = _counts(codes, y[present], len(levels))
    woe, _ = _woe(pos, neg)
    order = np.argsort(woe, kind="stable")
    groups: list[list[int]] = [[int(i)] for i in order]
    group_woe = [float(woe[i]) for i in order]
    while len(groups) > MAX_GROUPS:
        gaps = [group_woe[i + 1] - group_woe[i] for i in range(len(groups) - 1)]
        i = int(np.argmin(gaps))
        groups[i] = groups[i] + groups.pop(i + 1)
        w, _ = _woe(
            np.array([pos[g].sum() for g in groups]), np.array([neg[g].sum() for g in groups])
        )
        group_woe = [float(v) for v in w]
    bins = [
        Bin(", ".join(levels[i] for i in g), levels=tuple(sorted(levels[i] for i in g)))
        for g in groups
    ]
    if (~present).any():
        bins.append(Bin("missing", missing=True))
    return bins


def fit_scorecard(
    source: pd.DataFrame, y: np.ndarray, categorical: tuple[str, ...], *, seed: int = 0
) -> Scorecard:
    """The scorecard over ``source``'s columns (typed as ``tabular`` reads them)."""
    y = np.asarray(y, dtype=np.float64)
    features: list[Feature] = []
    notes: list[str] = []
    for name in map(str, source.columns):
        numeric = name not in categorical
        if numeric:
            bins, _ = _numeric_bins(source[name].to_numpy(dtype=np.float64), y)
        else:
            bins = _categorical_bins(source[name], y)
        feature = Feature(name, numeric, bins, 0.0)
        idx = feature.index(source[name])
        k = len(bins)
        seen = idx >= 0
        pos, neg = _counts(idx[seen], y[seen], k)
        woe, iv = _woe(pos, neg)
        for b, spec in enumerate(bins):
            spec.woe = float(woe[b])
            spec.count = int(pos[b] + neg[b])
            spec.rate = float(pos[b] / spec.count) if spec.count else 0.0
        feature.iv = iv
        if iv < MIN_IV or k < 2:
            notes.append(f"{name}: information value {iv:.3f}, left out")
            continue
        features.append(feature)
    if not features:
        raise ValidationError("no column carries enough information for a scorecard")
    design = np.column_stack(
        [
            np.append(np.array([b.woe for b in f.bins]), 0.0)[f.index(source[f.name])]
            for f in features
        ]
    )
    with one_thread():
        lr = LogisticRegression(C=1.0, max_iter=2000, random_state=seed).fit(design, y)
    for feature, coefficient in zip(features, lr.coef_[0], strict=True):
        feature.coefficient = float(coefficient)
        for spec in feature.bins:
            spec.points = round(FACTOR * float(coefficient) * spec.woe)
    intercept = float(lr.intercept_[0])
    card = Scorecard(features, intercept, round(FACTOR * intercept), 0)
    points = card.points(source)
    card.threshold = _best_threshold(points, y)
    card.notes = notes
    return card


def _best_threshold(points: np.ndarray, y: np.ndarray) -> int:
    """The score that maximises F1 (precision and recall in balance)."""
    best, best_f1 = 0, -1.0
    for t in np.unique(points):
        cut = m.at_threshold(y, points, float(t))
        if cut.flagged and cut.precision + cut.recall > 0:
            f1 = 2 * cut.precision * cut.recall / (cut.precision + cut.recall)
            if f1 > best_f1:
                best, best_f1 = int(t), f1
    return best

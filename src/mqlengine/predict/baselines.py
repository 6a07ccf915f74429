"""Naive Bayes the way Odoo CRM's predictive lead scoring does it, for comparison only.

Odoo keeps, per field and value, how many leads were won and lost, each count plus 0.1
(so no value has a zero frequency). A lead's won score is P(won) times, for every field it
has a value for, won(field=value) / won(field); its lost score likewise; the probability is
won / (won + lost), kept within 0.01 %–99.99 %. Unset values and values never seen in
training are left out of the product. Nothing is calibrated.

Odoo scores selection fields (country, source, language, tags…). A number is read the way
a user sees it in a list: in one of five bins cut at its quintiles, the edges rounded to two
significant digits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

SMOOTHING = 0.1
FLOOR, CEILING = 0.0001, 0.9999


def nice(value: float) -> float:
    """``value`` rounded to two significant digits (1234 → 1200, 0.0456 → 0.046)."""
    if value == 0 or not math.isfinite(value):
        return value
    digits = 1 - math.floor(math.log10(abs(value)))
    return round(value, digits)


def bin_edges(values: np.ndarray, bins: int = 5) -> list[float]:
    present = values[~np.isnan(values)]
    if present.size == 0:
        return []
    cuts = np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1])
    return sorted({nice(float(c)) for c in cuts})


def bin_labels(values: np.ndarray, edges: list[float]) -> np.ndarray:
    """Each value's bin as text (``<30``, ``30–45``, ``≥60``); missing stays None."""
    out = np.empty(len(values), dtype=object)
    index = np.searchsorted(np.asarray(edges), values, side="right")
    for i, (v, b) in enumerate(zip(values, index, strict=True)):
        if np.isnan(v):
            out[i] = None
        elif not edges:
            out[i] = "all"
        elif b == 0:
            out[i] = f"<{edges[0]:g}"
        elif b == len(edges):
            out[i] = f"≥{edges[-1]:g}"
        else:
            out[i] = f"{edges[b - 1]:g}–{edges[b]:g}"
    return out


@dataclass
class NaiveBayes:
    """Frequency tables per field: value → [won, lost] (each with the 0.1 added)."""

    won: int = 0
    lost: int = 0
    tables: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    edges: dict[str, list[float]] = field(default_factory=dict)

    def _values(self, frame: pd.DataFrame, name: str) -> np.ndarray:
        column = frame[name]
        if name in self.edges:
            numbers = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
            return bin_labels(numbers, self.edges[name])
        return np.array([None if pd.isna(v) else str(v) for v in column], dtype=object)

    def fit(self, frame: pd.DataFrame, y: np.ndarray, categorical: tuple[str, ...]) -> NaiveBayes:
        y = np.asarray(y, dtype=np.float64)
        self.won = int(y.sum())
        self.lost = int(len(y) - self.won)
        for name in frame.columns:
            if name not in categorical:
                numbers = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64)
                self.edges[name] = bin_edges(numbers)
        for name in frame.columns:
            table: dict[str, list[float]] = {}
            for value, outcome in zip(self._values(frame, name), y, strict=True):
                if value is None:
                    continue
                counts = table.setdefault(value, [SMOOTHING, SMOOTHING])
                counts[0 if outcome else 1] += 1
            self.tables[str(name)] = table
        return self

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        n = len(frame)
        total = self.won + self.lost
        if not self.won or not self.lost:
            return np.full(n, self.won / total if total else 0.0)
        log_won = np.full(n, math.log(self.won / total))
        log_lost = np.full(n, math.log(self.lost / total))
        for name, table in self.tables.items():
            won_total = sum(c[0] for c in table.values())
            lost_total = sum(c[1] for c in table.values())
            lookup_won = {v: math.log(c[0] / won_total) for v, c in table.items()}
            lookup_lost = {v: math.log(c[1] / lost_total) for v, c in table.items()}
            for i, value in enumerate(self._values(frame, name)):
                if value is not None and value in table:
                    log_won[i] += lookup_won[value]
                    log_lost[i] += lookup_lost[value]
        # won / (won + lost), in log space so that twenty fields do not underflow
        p = 1.0 / (1.0 + np.exp(log_lost - log_won))
        return np.asarray(np.clip(p, FLOOR, CEILING))

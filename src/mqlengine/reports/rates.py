"""Exchange rates a user gives (``--rates rates.csv``) so spend in several currencies can be
added up; without them spend is reported per currency and never summed across currencies.

The file has two columns, ``currency`` and ``rate``: what one unit of that currency is worth
in the report currency. The report currency is the one row whose rate is 1::

    currency,rate
    USD,1
    EUR,1.08
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from mqlengine.errors import ValidationError


@dataclass(frozen=True)
class Rates:
    """Rates to the report currency ``base``; ``source`` names the file (for messages)."""

    base: str
    rates: dict[str, float]
    source: str = "rates"

    def convert(self, amount: float, currency: str) -> float:
        rate = self.rates.get(currency.upper())
        if rate is None:
            raise ValidationError(
                f"{self.source}: no rate for {currency} (spend is recorded in {currency}; "
                f"add a line '{currency},<value in {self.base}>')"
            )
        return amount * rate


def load_rates(path: Path) -> Rates:
    """Read a rates CSV; errors name the file and line."""
    if not path.exists():
        raise ValidationError(f"{path}: no such file")
    rates: dict[str, float] = {}
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = {c.strip().lower(): c for c in reader.fieldnames or []}
        if "currency" not in columns or "rate" not in columns:
            raise ValidationError(f"{path}:1: needs the columns currency and rate")
        for line, row in enumerate(reader, start=2):
            currency = (row.get(columns["currency"]) or "").strip().upper()
            text = (row.get(columns["rate"]) or "").strip()
            if len(currency) != 3 or not currency.isalpha():
                raise ValidationError(
                    f"{path}:{line}: currency {currency!r} is not a 3-letter code"
                )
            try:
                rate = float(text)
            except ValueError:
                raise ValidationError(f"{path}:{line}: rate {text!r} is not a number") from None
            if rate <= 0:
                raise ValidationError(f"{path}:{line}: rate must be positive")
            if currency in rates:
                raise ValidationError(f"{path}:{line}: {currency} is listed twice")
            rates[currency] = rate
    bases = [c for c, r in rates.items() if r == 1.0]
    if len(bases) != 1:
        raise ValidationError(
            f"{path}: exactly one currency must have rate 1 (the report currency); "
            f"found {', '.join(bases) or 'none'}"
        )
    return Rates(bases[0], rates, str(path))

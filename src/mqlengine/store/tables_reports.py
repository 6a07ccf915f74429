"""Tables of the reports room: marketing spend per channel/campaign and month.

Spend is imported from a CSV (``mql spend import``) or loaded by the demo; one row per
(channel, campaign, month, currency), so importing the same file again replaces amounts
instead of doubling them.
"""

from __future__ import annotations

from sqlalchemy import Column, Date, Float, String, Table, UniqueConstraint

from mqlengine.store.tables import Id, metadata
from mqlengine.store.types import UTCDateTime

spend = Table(
    "spend",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("channel", String(64), nullable=False),
    Column("campaign", String(255), nullable=False, default=""),  # "" = the whole channel
    Column("month", Date, nullable=False),  # first day of the month
    Column("amount", Float, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("source", String(255), nullable=False, default=""),  # file it came from
    Column("imported_at", UTCDateTime(), nullable=False),
    UniqueConstraint("channel", "campaign", "month", "currency"),
)

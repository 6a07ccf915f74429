"""Rows for tests that write the store directly."""

from __future__ import annotations

from support.clock import NOW


def person_row(**values: object) -> dict[str, object]:
    """A persons row with every required column (``values`` override or add)."""
    row: dict[str, object] = {
        "traits": {},
        "profile": {},
        "flags": [],
        "first_seen_at": NOW,
        "last_seen_at": NOW,
        "stage": "lead",
        "stage_changed_at": NOW,
        "created_at": NOW,
        "updated_at": NOW,
    }
    row.update(values)
    return row

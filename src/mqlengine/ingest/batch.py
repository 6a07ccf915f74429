"""The state one batch carries through the write path's stages, and what it answers.

:class:`Batch` is filled stage by stage (see :mod:`mqlengine.ingest.stages`): each stage
reads what the earlier ones left and adds its own part; none rewrites another's part
afterwards. :class:`BatchResult` is what the caller gets back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from mqlengine.domain.lifecycle import StageChange
from mqlengine.domain.person import Person
from mqlengine.ingest.messages import Message

if TYPE_CHECKING:
    from mqlengine.ingest.identity import IdentityGraph
    from mqlengine.ingest.qualify import Outcome
    from mqlengine.ingest.writerstate import WriterState


@dataclass(frozen=True)
class Rejection:
    index: int
    message_id: str | None
    field: str
    reason: str
    code: str = "invalid_message"  # or "rejected_by_check" (the definition's validation)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "messageId": self.message_id,
            "code": self.code,
            "field": self.field,
            "reason": self.reason,
        }


# (index, message, signal flags) of the good messages, and the rejections
Parsed = tuple[list[tuple[int, Message, frozenset[str]]], list[Rejection]]


@dataclass
class BatchResult:
    accepted: int = 0
    duplicates: int = 0
    suppressed: int = 0  # messages of erased identifiers, dropped (MQL_AFTER_ERASURE=suppress)
    rejected: list[Rejection] = field(default_factory=list)
    duplicate_indexes: list[int] = field(default_factory=list)
    persons: set[int] = field(default_factory=set)
    outcomes: list[Outcome] = field(default_factory=list)
    merges: list[tuple[int, int]] = field(default_factory=list)

    @property
    def stage_changes(self) -> list[tuple[int, StageChange]]:
        return [(o.person_id, o.change) for o in self.outcomes if o.change is not None]


@dataclass
class Batch:
    """One batch between stages, on the caller's transaction.

    ``memory`` is the writer's memory when it can be trusted for this transaction, else
    a fresh one that lives for this batch only: the stages read and fill it the same way.
    """

    connection: Connection
    raw: Sequence[Any]
    now: datetime
    replay: bool  # score each person as of its newest event (history), not at ``now``
    memory: WriterState
    result: BatchResult = field(default_factory=BatchResult)
    # parse
    good: list[tuple[int, Message, frozenset[str]]] = field(default_factory=list)
    # dedupe: the messages not stored before, with their signal flags
    fresh: list[tuple[Message, frozenset[str]]] = field(default_factory=list)
    # resolve: who each message belongs to, and what it says of them
    graph: IdentityGraph | None = None
    event_rows: list[dict[str, Any]] = field(default_factory=list)
    touched: dict[int, datetime] = field(default_factory=dict)  # person → newest event
    trait_updates: dict[int, dict[str, Any]] = field(default_factory=dict)
    flag_updates: dict[int, set[str]] = field(default_factory=dict)
    groups: dict[int, Message] = field(default_factory=dict)  # person → its group call
    relevant: set[int] = field(default_factory=set)  # replay: persons with scorable events
    # people: the touched persons as they now stand, and last_seen_at not yet written
    people: dict[int, Person] = field(default_factory=dict)
    last_seen: dict[int, datetime] = field(default_factory=dict)

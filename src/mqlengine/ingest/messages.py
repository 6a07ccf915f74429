"""Segment-spec messages → validated :class:`Message` values, with clear reasons when not.

Follows the Segment tracking spec: ``identify``, ``track``, ``page``, ``screen``, ``group``,
``alias``; ``userId`` or ``anonymousId`` required; traits read at the top level and under
``context.traits`` (where RudderStack puts them); clock skew corrected with ``sentAt`` the
way Segment does (``timestamp = receivedAt - (sentAt - timestamp)``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

TYPES = ("identify", "track", "page", "screen", "group", "alias")
SCORED_TYPES = frozenset({"track", "page", "screen"})
PAGE_EVENT = "Page Viewed"
SCREEN_EVENT = "Screen Viewed"
MAX_ID_LENGTH = 255
MAX_EVENT_NAME = 255
MAX_SKEW = timedelta(days=1)


class MessageError(ValueError):
    """A message that cannot be accepted; ``field`` says where."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Message:
    type: str
    message_id: str
    timestamp: datetime
    received_at: datetime
    name: str  # event name as scoring sees it (page → "Page Viewed")
    user_id: str | None = None
    anonymous_id: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    traits: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    group_id: str | None = None
    previous_id: str | None = None

    @property
    def scored(self) -> bool:
        return self.type in SCORED_TYPES


def parse_time(value: Any, field_name: str) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise MessageError(field_name, f"not an ISO 8601 time: {value!r}") from None
    else:
        raise MessageError(field_name, f"expected an ISO 8601 string, got {type(value).__name__}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _identifier(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise MessageError(key, "must be a string")
    text = str(value).strip()
    if len(text) > MAX_ID_LENGTH:
        raise MessageError(key, f"longer than {MAX_ID_LENGTH} characters")
    return text or None


def _object(raw: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MessageError(key, f"must be an object, got {type(value).__name__}")
    return value


def content_message_id(raw: Mapping[str, Any]) -> str:
    """A stable id for a message that came without one: redelivery stays idempotent."""
    digest = hashlib.sha256(orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return f"sha256-{digest[:40]}"


def parse_message(raw: Any, *, received_at: datetime, default_type: str | None = None) -> Message:
    """Validate one Segment message. Raises :class:`MessageError` naming the field."""
    if not isinstance(raw, dict):
        raise MessageError("", f"a message must be a JSON object, got {type(raw).__name__}")
    kind = raw.get("type", default_type)
    if kind not in TYPES:
        raise MessageError("type", f"must be one of {', '.join(TYPES)}, got {kind!r}")
    user_id = _identifier(raw, "userId")
    anonymous_id = _identifier(raw, "anonymousId")
    if user_id is None and anonymous_id is None:
        raise MessageError("userId", "userId or anonymousId is required")
    context = _object(raw, "context")
    properties = _object(raw, "properties")
    if kind == "group":
        traits = dict(_object(raw, "traits"))  # the group's (account's) traits
    else:
        traits = dict(_object(context, "traits")) if "traits" in context else {}
        traits.update(_object(raw, "traits"))

    if raw.get("timestamp") is not None:
        timestamp = parse_time(raw["timestamp"], "timestamp")
        if raw.get("sentAt") is not None:
            sent_at = parse_time(raw["sentAt"], "sentAt")
            timestamp = received_at - (sent_at - timestamp)
    elif raw.get("originalTimestamp") is not None:
        timestamp = parse_time(raw["originalTimestamp"], "originalTimestamp")
    else:
        timestamp = received_at
    if timestamp > received_at + MAX_SKEW:
        raise MessageError("timestamp", f"{timestamp.isoformat()} is in the future")

    name: str
    if kind == "track":
        event = raw.get("event")
        if not isinstance(event, str) or not event.strip():
            raise MessageError("event", "a track call needs an event name")
        if len(event) > MAX_EVENT_NAME:
            raise MessageError("event", f"longer than {MAX_EVENT_NAME} characters")
        name = event.strip()
    elif kind in ("page", "screen"):
        name = PAGE_EVENT if kind == "page" else SCREEN_EVENT
        page_name = raw.get("name")
        if isinstance(page_name, str) and page_name and "name" not in properties:
            properties = {**properties, "name": page_name}
        page_context = context.get("page")
        if isinstance(page_context, dict):
            for key in ("path", "url", "referrer", "title", "search"):
                if key not in properties and key in page_context:
                    properties = {**properties, key: page_context[key]}
    else:
        name = kind.capitalize()

    group_id = _identifier(raw, "groupId") if kind == "group" else None
    if kind == "group" and group_id is None:
        raise MessageError("groupId", "a group call needs a groupId")
    previous_id = _identifier(raw, "previousId") if kind == "alias" else None
    if kind == "alias" and previous_id is None:
        raise MessageError("previousId", "an alias call needs a previousId")
    if kind == "alias" and user_id is None:
        raise MessageError("userId", "an alias call needs a userId")

    message_id = _identifier(raw, "messageId") or content_message_id(raw)
    return Message(
        type=kind,
        message_id=message_id,
        timestamp=timestamp,
        received_at=received_at,
        name=name,
        user_id=user_id,
        anonymous_id=anonymous_id,
        properties=properties,
        traits=traits,
        context=context,
        group_id=group_id,
        previous_id=previous_id,
    )

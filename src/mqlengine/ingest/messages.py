"""Segment-spec messages → validated :class:`Message` values, with clear reasons when not.

Follows the Segment tracking spec: ``identify``, ``track``, ``page``, ``screen``, ``group``,
``alias``; ``userId`` or ``anonymousId`` required; traits read at the top level and under
``context.traits`` (where RudderStack puts them); clock skew corrected with ``sentAt`` the
way Segment does (``timestamp = receivedAt - (sentAt - timestamp)``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from mqlengine.domain.bounds import (
    MAX_JSON_DEPTH,
    MAX_MOMENT,
    MIN_MOMENT,
    NUL_PROBLEM,
    OutOfBounds,
    json_problem,
    utc_moment,
)
from mqlengine.errors import ValidationError
from mqlengine.store.repo import SCORED_TYPES

TYPES = ("identify", "track", "page", "screen", "group", "alias")
PAGE_EVENT = "Page Viewed"
SCREEN_EVENT = "Screen Viewed"
MAX_ID_LENGTH = 255
MAX_EVENT_NAME = 255
MAX_SKEW = timedelta(days=1)
_PAGE_KEYS = ("path", "url", "referrer", "title", "search")  # copied from context.page
_fromisoformat = datetime.fromisoformat


class MessageError(ValidationError, ValueError):
    """A message that cannot be accepted; ``field`` says where."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}" if field else reason, details={"field": field})
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
    untracked: bool = False  # sent without tracking consent: stored stripped, never scored

    @property
    def scored(self) -> bool:
        return self.type in SCORED_TYPES and not self.untracked


class _MessageFields:
    """A :class:`Message` under construction: the same slots without the frozen
    ``__setattr__``, so filling one is plain attribute stores. :func:`parse_message` then
    makes it a ``Message`` (``__class__`` assignment between identical slot layouts),
    which costs a fraction of the generated frozen ``__init__`` on a hot path."""

    __slots__ = Message.__slots__

    def __init__(
        self,
        type: str,
        message_id: str,
        timestamp: datetime,
        received_at: datetime,
        name: str,
        user_id: str | None,
        anonymous_id: str | None,
        properties: dict[str, Any],
        traits: dict[str, Any],
        context: dict[str, Any],
        group_id: str | None,
        previous_id: str | None,
        untracked: bool,
    ) -> None:
        self.type = type
        self.message_id = message_id
        self.timestamp = timestamp
        self.received_at = received_at
        self.name = name
        self.user_id = user_id
        self.anonymous_id = anonymous_id
        self.properties = properties
        self.traits = traits
        self.context = context
        self.group_id = group_id
        self.previous_id = previous_id
        self.untracked = untracked


def parse_time(value: Any, field_name: str) -> datetime:
    """An ISO 8601 time in UTC (naive means UTC), inside the engine's range of moments
    (:mod:`mqlengine.domain.bounds`); :class:`MessageError` naming ``field_name`` if not."""
    if value.__class__ is str:
        # Fast path: most timestamps are already in a form ``fromisoformat`` reads as is
        # (it takes a trailing "Z" as UTC); anything else goes the careful way below.
        try:
            parsed = _fromisoformat(value)
        except ValueError:
            pass
        else:
            zone = parsed.tzinfo
            if zone is UTC or zone is None:
                if zone is None:
                    parsed = parsed.replace(tzinfo=UTC)
                if MIN_MOMENT <= parsed <= MAX_MOMENT:
                    return parsed
            return _in_range(parsed, field_name)
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
    return _in_range(parsed, field_name)


def _in_range(parsed: datetime, field_name: str) -> datetime:
    try:
        return utc_moment(parsed)
    except OutOfBounds as error:
        raise MessageError(field_name, str(error)) from None


def _skew_corrected(timestamp: datetime, sent_at: datetime, received_at: datetime) -> datetime:
    """Segment's clock-skew correction, refused when it leaves the range of moments."""
    try:
        corrected = received_at - (sent_at - timestamp)
    except OverflowError:
        corrected = None
    if corrected is None or corrected < MIN_MOMENT:
        raise MessageError(
            "sentAt",
            f"the clock-skew correction (receivedAt - (sentAt - timestamp)) puts the event "
            f"before {MIN_MOMENT.date().isoformat()}",
        )
    return corrected


def _check_storable(raw: dict[str, Any]) -> None:
    """Refuse a message the store cannot keep (nested deeper than the JSON encoder goes, a
    NUL character, a number JSON cannot hold), naming the top-level field where it is.
    The common case costs one encoding in C; only a refused message is walked."""
    try:
        encoded = orjson.dumps(raw)
    except TypeError:
        encodable = False
    else:
        if b"\\u0000" not in encoded:
            return
        encodable = True  # the escape may be text that says \u0000: look closer
    for key, value in raw.items():
        problem = json_problem(value, MAX_JSON_DEPTH - 1)
        if problem is None and "\x00" in str(key):
            problem = NUL_PROBLEM
        if problem is None:
            try:
                orjson.dumps(value)
            except TypeError as error:
                problem = f"cannot be stored as JSON: {error}"
        if problem is not None:
            raise MessageError(str(key).replace("\x00", "\\u0000"), problem)
    if not encodable:
        raise MessageError("", "the message cannot be stored as JSON")


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


# Traits the store keeps in columns of their own: (trait, longest accepted text).
_GROUP_TEXTS = (("name", 255), ("website", 2048), ("domain", 255))
_PERSON_TEXTS = (("email", 320), ("external_id", MAX_ID_LENGTH), ("crm_id", MAX_ID_LENGTH))


def _check_texts(traits: Mapping[str, Any], limits: tuple[tuple[str, int], ...]) -> None:
    """Traits that become columns (an account's name and domain, a person's e-mail and
    external ids) must be text (or a number) that fits the column."""
    for key, longest in limits:
        value = traits.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise MessageError(f"traits.{key}", f"must be a string, got {type(value).__name__}")
        if isinstance(value, str) and len(value) > longest:
            raise MessageError(f"traits.{key}", f"longer than {longest} characters")


def _object(raw: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MessageError(key, f"must be an object, got {type(value).__name__}")
    return value


def content_message_id(raw: Mapping[str, Any]) -> str:
    """A stable id for a message that came without one: redelivery stays idempotent."""
    try:
        text = orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # what orjson cannot encode (an integer past 64 bits …), spelled out
        text = json.dumps(raw, sort_keys=True, default=repr).encode()
    digest = hashlib.sha256(text).hexdigest()
    return f"sha256-{digest[:40]}"


def parse_message(raw: Any, *, received_at: datetime, default_type: str | None = None) -> Message:
    """Validate one Segment message. Raises :class:`MessageError` naming the field."""
    # The checks run in a fixed order (the first problem found is the one reported); the
    # common shapes (string ids, objects present, ISO timestamps) take inline fast paths.
    if not isinstance(raw, dict):
        raise MessageError("", f"a message must be a JSON object, got {type(raw).__name__}")
    _check_storable(raw)
    kind = raw.get("type", default_type)
    if kind not in TYPES:
        raise MessageError("type", f"must be one of {', '.join(TYPES)}, got {kind!r}")
    value = raw.get("userId")
    if value.__class__ is str and len(value) <= MAX_ID_LENGTH:
        user_id = value.strip() or None
    else:
        user_id = None if value is None else _identifier(raw, "userId")
    value = raw.get("anonymousId")
    if value.__class__ is str and len(value) <= MAX_ID_LENGTH:
        anonymous_id = value.strip() or None
    else:
        anonymous_id = None if value is None else _identifier(raw, "anonymousId")
    if user_id is None and anonymous_id is None:
        raise MessageError("userId", "userId or anonymousId is required")
    context = raw.get("context")
    if context.__class__ is not dict:
        context = {} if context is None else _object(raw, "context")
    properties = raw.get("properties")
    if properties.__class__ is not dict:
        properties = {} if properties is None else _object(raw, "properties")
    if kind == "group":
        traits = dict(_object(raw, "traits"))  # the group's (account's) traits
    elif "traits" in context:
        traits = dict(_object(context, "traits"))
        traits.update(_object(raw, "traits"))
    else:
        given = raw.get("traits")
        if given is None:
            traits = {}
        else:
            traits = dict(given if given.__class__ is dict else _object(raw, "traits"))

    if traits and kind != "group":
        _check_texts(traits, _PERSON_TEXTS)

    value = raw.get("timestamp")
    if value is not None:
        timestamp = parse_time(value, "timestamp")
        if raw.get("sentAt") is not None:
            sent_at = parse_time(raw["sentAt"], "sentAt")
            timestamp = _skew_corrected(timestamp, sent_at, received_at)
    elif raw.get("originalTimestamp") is not None:
        timestamp = parse_time(raw["originalTimestamp"], "originalTimestamp")
    else:
        timestamp = received_at
    if timestamp > received_at + MAX_SKEW:
        raise MessageError("timestamp", f"{timestamp.isoformat()} is in the future")

    name: str
    if kind == "page" or kind == "screen":
        name = PAGE_EVENT if kind == "page" else SCREEN_EVENT
        filled: dict[str, Any] | None = None  # a copy of properties, once one is needed
        page_name = raw.get("name")
        if isinstance(page_name, str) and page_name and "name" not in properties:
            filled = {**properties, "name": page_name}
        page_context = context.get("page")
        if page_context is not None and isinstance(page_context, dict):
            for key in _PAGE_KEYS:
                if key not in properties and key in page_context:
                    if filled is None:
                        filled = {**properties}
                    filled[key] = page_context[key]
        if filled is not None:
            properties = filled
    elif kind == "track":
        event = raw.get("event")
        if not isinstance(event, str) or not event.strip():
            raise MessageError("event", "a track call needs an event name")
        if len(event) > MAX_EVENT_NAME:
            raise MessageError("event", f"longer than {MAX_EVENT_NAME} characters")
        name = event.strip()
    else:
        name = kind.capitalize()

    group_id: str | None = None
    previous_id: str | None = None
    if kind == "group":
        group_id = _identifier(raw, "groupId")
        if group_id is None:
            raise MessageError("groupId", "a group call needs a groupId")
        if traits:
            _check_texts(traits, _GROUP_TEXTS)
    elif kind == "alias":
        previous_id = _identifier(raw, "previousId")
        if previous_id is None:
            raise MessageError("previousId", "an alias call needs a previousId")
        if user_id is None:
            raise MessageError("userId", "an alias call needs a userId")

    value = raw.get("messageId")
    if value.__class__ is str and len(value) <= MAX_ID_LENGTH:
        message_id = value.strip() or content_message_id(raw)
    else:
        message_id = _identifier(raw, "messageId") or content_message_id(raw)
    message: Any = _MessageFields(
        kind,
        message_id,
        timestamp,
        received_at,
        name,
        user_id,
        anonymous_id,
        properties,
        traits,
        context,
        group_id,
        previous_id,
        False,
    )
    message.__class__ = Message
    return message  # type: ignore[no-any-return]

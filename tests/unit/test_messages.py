"""Segment messages: parse_message against a plain reading of the spec, and Message values."""

from __future__ import annotations

import dataclasses
import hashlib
import random
import string
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mqlengine.ingest.messages import (
    MAX_EVENT_NAME,
    MAX_ID_LENGTH,
    MAX_SKEW,
    PAGE_EVENT,
    SCREEN_EVENT,
    TYPES,
    Message,
    MessageError,
    parse_message,
    parse_time,
)

RECEIVED = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


# --- the reference: every rule spelled out plainly, with no fast paths -------------------


def reference_time(value: Any, field_name: str) -> datetime:
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


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def reference_parse(raw: Any, *, received_at: datetime, default_type: str | None = None) -> Message:
    if not isinstance(raw, dict):
        raise MessageError("", f"a message must be a JSON object, got {type(raw).__name__}")
    for key, value in raw.items():
        if _depth(value) > 253:
            raise MessageError(key, "nested more than 254 levels deep")
        if _has_nul(value) or "\x00" in key:
            raise MessageError(
                key, "contains a NUL character (\\u0000), which the database cannot store"
            )
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
        traits = dict(_object(raw, "traits"))
    else:
        traits = dict(_object(context, "traits")) if "traits" in context else {}
        traits.update(_object(raw, "traits"))
    limits = {"group": {"name": 255, "website": 2048, "domain": 255}}.get(
        kind, {"email": 320, "external_id": 255, "crm_id": 255}
    )
    for trait, longest in limits.items() if kind != "group" else ():
        value = traits.get(trait)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, str | int | float)
        ):
            raise MessageError(f"traits.{trait}", f"must be a string, got {type(value).__name__}")
        if isinstance(value, str) and len(value) > longest:
            raise MessageError(f"traits.{trait}", f"longer than {longest} characters")
    if raw.get("timestamp") is not None:
        timestamp = reference_time(raw["timestamp"], "timestamp")
        if raw.get("sentAt") is not None:
            sent_at = reference_time(raw["sentAt"], "sentAt")
            timestamp = received_at - (sent_at - timestamp)
    elif raw.get("originalTimestamp") is not None:
        timestamp = reference_time(raw["originalTimestamp"], "originalTimestamp")
    else:
        timestamp = received_at
    if timestamp > received_at + MAX_SKEW:
        raise MessageError("timestamp", f"{timestamp.isoformat()} is in the future")
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
    for trait, longest in limits.items() if kind == "group" else ():
        value = traits.get(trait)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, str | int | float)
        ):
            raise MessageError(f"traits.{trait}", f"must be a string, got {type(value).__name__}")
        if isinstance(value, str) and len(value) > longest:
            raise MessageError(f"traits.{trait}", f"longer than {longest} characters")
    previous_id = _identifier(raw, "previousId") if kind == "alias" else None
    if kind == "alias" and previous_id is None:
        raise MessageError("previousId", "an alias call needs a previousId")
    if kind == "alias" and user_id is None:
        raise MessageError("userId", "an alias call needs a userId")
    message_id = _identifier(raw, "messageId")
    if message_id is None:
        digest = hashlib.sha256(orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)).hexdigest()
        message_id = f"sha256-{digest[:40]}"
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


def outcome(parse: Any, raw: Any, **kwargs: Any) -> tuple[str, Any]:
    try:
        message = parse(raw, received_at=RECEIVED, **kwargs)
    except MessageError as error:
        return "error", (error.field, error.reason)
    except Exception as error:  # whatever else escapes must escape from both alike
        return "raised", (type(error), str(error))
    assert type(message) is Message
    return "message", (
        message,
        [(f.name, type(getattr(message, f.name))) for f in dataclasses.fields(message)],
        list(message.properties),  # key order too
        list(message.traits),
    )


def assert_same(raw: Any, **kwargs: Any) -> None:
    expected = outcome(reference_parse, raw, **kwargs)
    assert outcome(parse_message, raw, **kwargs) == expected


# --- generated messages ------------------------------------------------------------------

IDS = st.one_of(
    st.none(),
    st.just(""),
    st.just("   "),
    st.text(string.ascii_letters + " -", max_size=12),
    st.integers(-5, 10**6),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.booleans(),
    st.lists(st.integers(-9, 9), max_size=1),
    st.sampled_from(
        [
            "a" * MAX_ID_LENGTH,
            "a" * (MAX_ID_LENGTH + 1),
            " " + "a" * MAX_ID_LENGTH,
            " " + "a" * (MAX_ID_LENGTH - 1) + " ",
        ]
    ),
)
TIMES = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "2026-11-20T11:00:00Z",
            "2026-11-20T11:00:00z",
            "2026-11-20T11:00:00.123456Z",
            " 2026-11-20T11:00:00Z ",
            "2026-11-20T11:00:00+00:00",
            "2026-11-20T13:00:00+02:00",
            "2026-11-20T11:00:00",
            "2026-11-20",
            "2026-11-20Z",
            "20261120T110000Z",
            "2026-11-20 11:00:00-05:30",
            "2026-11-22T11:00:00Z",  # beyond the allowed skew
            "2026-11-20T11:00:00+00:00Z",
            "yesterday",
            "",
        ]
    ),
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.none()
    ),
    st.integers(0, 2_000_000_000),
)
OBJECTS: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.just({}),
    st.dictionaries(
        st.sampled_from(["email", "name", "path", "url", "plan", "title", "referrer"]),
        st.one_of(st.text(max_size=5), st.integers(-9, 9), st.none()),
        max_size=3,
    ),
    st.just([]),
    st.just("x"),
)
PAGE_CONTEXT = st.one_of(
    st.none(),
    st.just("not an object"),
    st.dictionaries(
        st.sampled_from(["path", "url", "referrer", "title", "search", "hash"]),
        st.text(max_size=5),
        max_size=4,
    ),
)


@st.composite
def messages(draw: st.DrawFn) -> Any:
    raw: dict[str, Any] = {}
    for key, values in (
        ("type", st.sampled_from([*TYPES, "bogus", None, 3])),
        ("userId", IDS),
        ("anonymousId", IDS),
        ("messageId", IDS),
        ("groupId", IDS),
        ("previousId", IDS),
        ("timestamp", TIMES),
        ("sentAt", TIMES),
        ("originalTimestamp", TIMES),
        ("event", st.one_of(st.none(), st.text(" ab", max_size=4), st.integers(-9, 9))),
        ("name", st.one_of(st.none(), st.text("ab", max_size=3), st.integers(-9, 9))),
        ("properties", OBJECTS),
        ("traits", OBJECTS),
    ):
        if draw(st.booleans()):
            raw[key] = draw(values)
    if draw(st.booleans()):
        context: Any = {"userAgent": "Mozilla/5.0"}
        if draw(st.booleans()):
            context["traits"] = draw(OBJECTS)
        if draw(st.booleans()):
            context["page"] = draw(PAGE_CONTEXT)
        raw["context"] = context
    elif draw(st.booleans()):
        raw["context"] = draw(OBJECTS)
    return raw


@settings(max_examples=600)
@given(messages(), st.sampled_from([None, "track", "page", "identify"]))
def test_parse_message_agrees_with_the_reference(raw: Any, default_type: str | None) -> None:
    assert_same(raw, default_type=default_type)


def typical_message(rng: random.Random) -> dict[str, Any]:
    """Page views, tracks and identifies as browsers send them."""
    visitor = rng.randrange(50)
    raw: dict[str, Any] = {
        "anonymousId": f"anon-{visitor}",
        "messageId": f"m-{rng.getrandbits(64):x}",
        "timestamp": (RECEIVED - timedelta(seconds=rng.randrange(90))).isoformat(),
        "context": {"userAgent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0", "ip": "10.0.0.1"},
    }
    roll = rng.random()
    if roll < 0.6:
        path = rng.choice(["/", "/pricing", "/docs"])
        raw.update(type="page", name=path, properties={"path": path, "url": "https://x.io" + path})
        if rng.random() < 0.5:
            raw["timestamp"] = raw["timestamp"].replace("+00:00", "Z")
            raw["context"]["page"] = {"referrer": "https://www.google.com/", "title": "X"}
    elif roll < 0.9:
        raw.update(type="track", event="Trial Started", properties={"plan": "pro"})
    else:
        raw.update(
            type="identify",
            userId=f"user-{visitor}",
            traits={"email": f"p{visitor}@acme.com", "title": "CTO", "company": {"size": 4}},
        )
    parsed: dict[str, Any] = orjson.loads(orjson.dumps(raw))
    return parsed


def test_typical_messages_agree_with_the_reference() -> None:
    rng = random.Random(3)
    for _ in range(300):
        assert_same(typical_message(rng))


@pytest.mark.parametrize("raw", [None, [], "x", 3, ("type", "page")])
def test_a_message_must_be_an_object(raw: Any) -> None:
    assert_same(raw)


def test_long_identifiers_are_measured_after_trimming() -> None:
    padded = " " + "a" * MAX_ID_LENGTH + " "
    message = parse_message(
        {"type": "page", "anonymousId": padded, "messageId": padded}, received_at=RECEIVED
    )
    assert message.anonymous_id == "a" * MAX_ID_LENGTH
    assert message.message_id == "a" * MAX_ID_LENGTH
    with pytest.raises(MessageError) as caught:
        parse_message({"type": "page", "userId": "a" * (MAX_ID_LENGTH + 1)}, received_at=RECEIVED)
    assert (caught.value.field, caught.value.reason) == (
        "userId",
        f"longer than {MAX_ID_LENGTH} characters",
    )


def test_page_properties_are_filled_from_the_page_context_without_touching_the_input() -> None:
    properties = {"path": "/given"}
    raw = {
        "type": "page",
        "anonymousId": "a",
        "name": "Pricing",
        "properties": properties,
        "context": {"page": {"path": "/ignored", "url": "https://x.io/p", "title": "T"}},
    }
    message = parse_message(raw, received_at=RECEIVED)
    assert message.properties == {
        "path": "/given",
        "name": "Pricing",
        "url": "https://x.io/p",
        "title": "T",
    }
    assert list(message.properties) == ["path", "name", "url", "title"]
    assert properties == {"path": "/given"}
    assert_same(raw)


def test_page_context_fills_in_a_fixed_order() -> None:
    page = {"search": "?q", "title": "T", "referrer": "r", "url": "u", "path": "/p", "hash": "#"}
    for kind in ("page", "screen"):
        raw = {"type": kind, "anonymousId": "a", "context": {"page": page}}
        message = parse_message(raw, received_at=RECEIVED)
        assert list(message.properties) == ["path", "url", "referrer", "title", "search"]
        assert_same(raw)


def test_properties_and_context_are_not_copied_when_nothing_is_added() -> None:
    raw = {"type": "track", "event": "E", "anonymousId": "a", "properties": {"x": 1}}
    raw["context"] = {"ip": "10.0.0.1"}
    message = parse_message(raw, received_at=RECEIVED)
    assert message.properties is raw["properties"]
    assert message.context is raw["context"]


def test_traits_are_always_a_copy() -> None:
    raw = {"type": "identify", "userId": "u", "traits": {"email": "a@b.co"}}
    message = parse_message(raw, received_at=RECEIVED)
    assert message.traits == {"email": "a@b.co"}
    assert message.traits is not raw["traits"]


# --- the Message value --------------------------------------------------------------------


def test_parsed_messages_are_ordinary_frozen_messages() -> None:
    raw = {"type": "track", "event": " Signed Up ", "userId": " u1 ", "messageId": "m1"}
    message = parse_message(raw, received_at=RECEIVED)
    built = Message(
        type="track",
        message_id="m1",
        timestamp=RECEIVED,
        received_at=RECEIVED,
        name="Signed Up",
        user_id="u1",
    )
    assert type(message) is Message
    assert message == built
    assert repr(message) == repr(built)
    assert message.scored
    with pytest.raises(dataclasses.FrozenInstanceError):
        message.name = "other"  # type: ignore[misc]
    assert dataclasses.replace(message, name="other").name == "other"
    assert dataclasses.asdict(message) == dataclasses.asdict(built)


# --- timestamps ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-20T11:00:00Z",
        "2026-11-20T11:00:00z",
        "2026-11-20T11:00:00.5Z",
        "2026-11-20T11:00:00+00:00",
        "2026-11-20T11:00:00-00:00",
        "2026-11-20T13:00:00+02:00",
        "2026-11-20T11:00:00",
        "2026-11-20",
        "20261120T110000Z",
        "2026-W47-5T11:00Z",
        " 2026-11-20T11:00:00Z\n",
        "2026-11-20T11:00:00+00:00Z",
        "2026-11-20Z",
        "Z",
        "",
        "soon",
        datetime(2026, 11, 20, 11, 0),
        datetime(2026, 11, 20, 11, 0, tzinfo=timezone(timedelta(hours=-3))),
        datetime(2026, 11, 20, 11, 0, tzinfo=UTC),
        1_700_000_000,
        None,
    ],
)
def test_parse_time_agrees_with_the_reference(value: Any) -> None:
    def run(parse: Any) -> Any:
        try:
            parsed = parse(value, "timestamp")
        except MessageError as error:
            return error.field, error.reason
        return parsed, parsed.tzinfo, parsed.utcoffset()

    expected = run(reference_time)
    assert run(parse_time) == expected
    if not isinstance(expected[0], str):
        assert expected[1] is UTC


@given(
    st.datetimes(
        min_value=datetime(1900, 1, 2),
        max_value=datetime(8999, 12, 31),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]),
    )
)
def test_parse_time_round_trips_iso_strings(moment: datetime) -> None:
    for text in (moment.isoformat(), moment.isoformat().replace("+00:00", "Z")):
        assert parse_time(text, "t") == reference_time(text, "t") == moment
        assert parse_time(text, "t").tzinfo is UTC


@given(
    st.datetimes(
        timezones=st.builds(
            timezone, st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23))
        )
    )
)
def test_any_iso_time_is_in_range_or_refused_naming_the_field(moment: datetime) -> None:
    """Year 1 or 9999 with an offset cannot even be converted to UTC: refused, never a crash."""
    try:
        parsed = parse_time(moment.isoformat(), "timestamp")
    except MessageError as error:
        assert error.field == "timestamp"
        assert "outside the supported range" in error.reason
        assert not datetime(1900, 1, 1, tzinfo=UTC) <= moment <= datetime(9000, 1, 1, tzinfo=UTC)
    else:
        assert parsed == moment
        assert datetime(1900, 1, 1, tzinfo=UTC) <= parsed <= datetime(9000, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("timestamp", "sent_at", "field"),
    [
        ("1900-01-02T00:00:00Z", "8999-12-30T00:00:00Z", "sentAt"),  # correction overflows
        ("1950-01-01T00:00:00Z", "2100-01-01T00:00:00Z", "sentAt"),  # lands before 1900
        ("0001-01-01T00:00:00+01:00", "2026-11-20T12:00:00Z", "timestamp"),
        ("2026-11-20T11:00:00Z", "9999-12-31T23:59:59-01:00", "sentAt"),
    ],
)
def test_clock_skew_correction_out_of_range_is_refused(
    timestamp: str, sent_at: str, field: str
) -> None:
    raw = {"type": "track", "event": "E", "userId": "u", "timestamp": timestamp, "sentAt": sent_at}
    with pytest.raises(MessageError) as caught:
        parse_message(raw, received_at=RECEIVED)
    assert caught.value.field == field


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def test_objects_nested_past_the_limit_are_refused_naming_the_field() -> None:
    ok = {"type": "track", "event": "E", "userId": "u", "properties": _nested(253)}
    assert parse_message(ok, received_at=RECEIVED).properties == ok["properties"]
    for depth in (254, 300, 1000):
        for key in ("properties", "context"):
            raw = {"type": "track", "event": "E", "userId": "u", key: _nested(depth)}
            with pytest.raises(MessageError) as caught:
                parse_message(raw, received_at=RECEIVED)
            assert caught.value.field == key
            assert "levels deep" in caught.value.reason


@pytest.mark.parametrize(
    ("kind", "traits", "field"),
    [
        ("group", {"name": ["a", "b"]}, "traits.name"),
        ("group", {"name": {"x": 1}}, "traits.name"),
        ("group", {"name": "n" * 256}, "traits.name"),
        ("group", {"domain": True}, "traits.domain"),
        ("identify", {"email": ["a@b.co"]}, "traits.email"),
        ("identify", {"email": "a" * 321}, "traits.email"),
        ("identify", {"external_id": "x" * 256}, "traits.external_id"),
        ("identify", {"crm_id": {"id": 1}}, "traits.crm_id"),
    ],
)
def test_traits_that_become_columns_must_fit_them(
    kind: str, traits: dict[str, Any], field: str
) -> None:
    raw = {"type": kind, "userId": "u", "groupId": "g", "traits": traits}
    with pytest.raises(MessageError) as caught:
        parse_message(raw, received_at=RECEIVED)
    assert caught.value.field == field


def test_text_that_spells_a_nul_escape_is_not_a_nul() -> None:
    raw = {"type": "track", "event": "E", "userId": "u", "properties": {"note": "\\u0000"}}
    assert parse_message(raw, received_at=RECEIVED).properties == {"note": "\\u0000"}
    raw["properties"] = {"note": "\x00"}
    with pytest.raises(MessageError) as caught:
        parse_message(raw, received_at=RECEIVED)
    assert caught.value.field == "properties"


def test_the_fast_constructor_fills_every_field_of_message() -> None:
    import inspect

    from mqlengine.ingest.messages import _MessageFields

    names = [f.name for f in dataclasses.fields(Message)]
    assert list(inspect.signature(_MessageFields).parameters) == names
    assert _MessageFields.__slots__ == Message.__slots__ == tuple(names)

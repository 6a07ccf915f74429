"""The demo generator: deterministic, big enough, Segment-shaped, and exercising the example
definition (events, properties, traits, exclusions) and the sales feedback loop."""

from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from mqlengine.demo.generator import CHANNELS, DemoDataset, SalesStep, generate
from support.paths import EXAMPLE

NOW = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)
DAYS = 180
SENIORITIES = {
    "c_level", "vp", "head", "director", "manager", "senior", "individual", "intern", "student",
}  # fmt: skip
DEPARTMENTS = {
    "marketing", "sales", "revenue_operations", "engineering", "product", "finance", "hr", "it",
    "operations", "data", "executive", "education",
}  # fmt: skip
INDUSTRIES = {
    "software", "fintech", "ecommerce", "healthcare", "manufacturing", "education", "retail",
    "media", "consulting",
}  # fmt: skip
FREE_MAIL = {"gmail.com", "yahoo.com", "hotmail.com", "outlook.com"}
DISPOSABLE = {"mailinator.com", "guerrillamail.com", "10minutemail.com"}
COMPETITORS = {"rivalytics.com", "competelabs.io", "metricmonger.com"}
UNSERVED = {"BR", "IN", "CN", "RU"}
UNSCORED = {"Form Submitted", "Email Opened", "Report Created", "Dashboard Shared"}
ACTIONS = {"touch", "accept", "reject", "recycle", "disqualify", "convert", "won", "lost"}


@pytest.fixture(scope="module")
def dataset() -> DemoDataset:
    return generate(now=NOW)


@pytest.fixture(scope="module")
def definition() -> dict[str, Any]:
    loaded = yaml.safe_load(EXAMPLE.read_text())
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def traits_by_user(dataset: DemoDataset) -> dict[str, dict[str, Any]]:
    """The richest identify traits seen per userId (re-identifies only carry the e-mail)."""
    result: dict[str, dict[str, Any]] = {}
    for message in dataset.messages:
        if message["type"] == "identify":
            known = result.setdefault(message["userId"], {})
            known.update(message["traits"])
    return result


def _domain(traits: dict[str, Any]) -> str:
    return str(traits["email"]).rsplit("@", 1)[1]


def _parse(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00"))


def assert_valid_messages(messages: list[dict[str, Any]], now: datetime, days: int) -> None:
    start = now - timedelta(days=days)
    seen_ids: set[str] = set()
    previous = start
    for message in messages:
        kind = message["type"]
        assert kind in {"identify", "track", "page", "group"}, message
        message_id = message["messageId"]
        assert isinstance(message_id, str) and message_id.startswith("demo-")
        assert message_id not in seen_ids, message_id
        seen_ids.add(message_id)
        stamp = message["timestamp"]
        assert stamp.endswith(("Z", "+00:00")), stamp
        at = _parse(stamp)
        assert at.utcoffset() == timedelta(0)
        assert start <= at <= now, stamp
        assert at >= previous, "messages must be sorted by timestamp"
        previous = at
        assert message.get("userId") or message.get("anonymousId"), message
        if kind == "track":
            assert isinstance(message["event"], str) and message["event"]
            assert isinstance(message["properties"], dict)
        elif kind == "page":
            assert isinstance(message["name"], str) and message["name"]
            assert message["properties"]["path"].startswith("/")
            assert "anonymousId" in message
        elif kind == "identify":
            assert message.get("userId")
            assert isinstance(message["traits"], dict) and "email" in message["traits"]
        else:
            assert message.get("groupId") and message.get("userId")
            assert {"name", "industry", "employees", "website"} <= set(message["traits"])


# --------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_dataset() -> None:
    first = generate(now=NOW, seed=11, persons=300, days=60)
    second = generate(now=NOW, seed=11, persons=300, days=60)
    assert first.messages == second.messages
    assert first.sales_plans == second.sales_plans
    assert first.spend == second.spend


def test_the_days_hold_the_messages_in_order() -> None:
    """`mql demo` ingests a day at a time: the days together are the messages, in order, and
    each day's messages fall on that day of the window (counted from its start)."""
    data = generate(now=NOW, seed=11, persons=300, days=60)
    start = NOW - timedelta(days=60)
    days = list(data.days())
    assert [m for _, day in days for m in day] == data.messages
    assert data.message_count == len(data.messages) > 0
    assert [d for d, _ in days] == sorted({d for d, _ in days})
    assert data.last_day == days[-1][0] <= 60
    for day, messages in days:
        assert messages
        assert {(_parse(m["timestamp"]) - start).days for m in messages} == {day}
    again = [m for _, day in data.days() for m in day]  # read again: new objects, same data
    assert again == data.messages and again[0] is not data.messages[0]


def test_different_seed_gives_different_dataset() -> None:
    first = generate(now=NOW, seed=11, persons=300, days=60)
    other = generate(now=NOW, seed=12, persons=300, days=60)
    assert first.messages != other.messages
    assert set(first.sales_plans) != set(other.sales_plans)


def test_now_is_the_only_clock() -> None:
    later = NOW + timedelta(days=3)
    shifted = generate(now=later, seed=5, persons=50, days=30)
    assert all(_parse(m["timestamp"]) <= later for m in shifted.messages)
    assert max(_parse(m["timestamp"]) for m in shifted.messages) > NOW - timedelta(days=2)


def test_naive_now_is_rejected() -> None:
    with pytest.raises(ValueError):
        generate(now=datetime(2026, 11, 20), persons=10)


def test_tiny_datasets_are_valid() -> None:
    assert generate(now=NOW, persons=0).messages == []
    tiny = generate(now=NOW, persons=40, days=1)
    assert_valid_messages(tiny.messages, NOW, 1)


# --------------------------------------------------------------------------- volume and shape


def test_default_size_has_enough_messages(dataset: DemoDataset) -> None:
    assert len(dataset.messages) >= 200_000
    assert dataset.channels == CHANNELS


def test_volume_scales_with_persons(dataset: DemoDataset) -> None:
    smaller = generate(now=NOW, persons=500)
    ratio = len(smaller.messages) / len(dataset.messages)
    assert 0.06 < ratio < 0.14


def test_every_message_is_segment_shaped(dataset: DemoDataset) -> None:
    assert_valid_messages(dataset.messages, NOW, DAYS)
    assert [m["messageId"] for m in dataset.messages[:3]] == ["demo-0", "demo-1", "demo-2"]


def test_messages_do_not_share_mutable_objects(dataset: DemoDataset) -> None:
    """Consumers may mutate a message (e.g. normalise traits) without touching another."""
    seen: set[int] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict | list):
            assert id(value) not in seen
            seen.add(id(value))
            for item in value.values() if isinstance(value, dict) else value:
                walk(item)

    for message in dataset.messages:
        walk(message)


def test_identify_links_anonymous_history_to_user(dataset: DemoDataset) -> None:
    links: dict[str, str] = {}
    identified: set[str] = set()
    anonymous_before: set[str] = set()  # anonymousIds seen before being linked
    started_anonymous = 0
    identifies = 0
    for message in dataset.messages:
        anon: str | None = message.get("anonymousId")
        user: str | None = message.get("userId")
        if message["type"] == "identify":
            assert user is not None
            identifies += user not in identified
            if anon is not None:
                assert links.setdefault(anon, user) == user, "one anonymousId, one person"
                if anon in anonymous_before and user not in identified:
                    started_anonymous += 1
            identified.add(user)
            continue
        if user is None:
            assert anon is not None
            assert anon not in links, "after identify, that browser's messages carry the userId"
            anonymous_before.add(anon)
        else:
            assert user in identified, "a userId appears only after its identify"
            if anon is not None and anon in links:
                assert links[anon] == user
    assert identifies > 3000
    assert 0.5 < started_anonymous / identifies < 0.85  # most start anonymous, ~30% known


def test_activity_per_person_is_realistic(dataset: DemoDataset) -> None:
    links = {
        m["anonymousId"]: m["userId"]
        for m in dataset.messages
        if m["type"] == "identify" and "anonymousId" in m
    }
    per_person: Counter[str] = Counter()
    for message in dataset.messages:
        user = message.get("userId") or links.get(message.get("anonymousId", ""))
        if user:
            per_person[user] += 1
    counts = sorted(per_person.values())
    assert 10 <= statistics.median(counts) <= 80
    assert counts[-1] >= 200, "a few power users have hundreds of events"


# --------------------------------------------------------------------------- the definition


def test_every_intent_rule_is_exercised(dataset: DemoDataset, definition: dict[str, Any]) -> None:
    tracks = Counter(m["event"] for m in dataset.messages if m["type"] == "track")
    paths = Counter(m["properties"]["path"] for m in dataset.messages if m["type"] == "page")
    for rule in definition["intent"]["rules"]:
        where = rule.get("where", {})
        if rule["event"] == "Page Viewed":
            pattern = re.compile(where["regex"])
            assert any(pattern.search(p) for p in paths), rule["id"]
            continue
        matching = [
            m
            for m in dataset.messages
            if m.get("event") == rule["event"]
            and ("equals" not in where or m["properties"].get(where["property"]) == where["equals"])
        ]
        assert len(matching) >= 20, rule["id"]
    scored = {r["event"] for r in definition["intent"]["rules"]}
    assert set(tracks) <= scored | UNSCORED
    assert set(tracks) >= UNSCORED


def test_workspace_activation_follows_trial(dataset: DemoDataset) -> None:
    trial_started: dict[str, str] = {}
    activated = 0
    for message in dataset.messages:
        if message.get("event") == "Trial Started":
            trial_started.setdefault(message["userId"], message["timestamp"])
        elif message.get("event") == "Workspace Activated":
            assert message["userId"] in trial_started
            activated += 1
    assert activated >= 100


def test_event_properties(dataset: DemoDataset) -> None:
    by_event: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for message in dataset.messages:
        if message["type"] == "track":
            by_event[message["event"]].append(message["properties"])
    assert all("asset" in p for p in by_event["Content Downloaded"])
    assert all({"campaign", "url"} <= set(p) for p in by_event["Email Link Clicked"])
    assert all({"form_id", "form_fill_seconds"} <= set(p) for p in by_event["Form Submitted"])
    assert {p["bounce_type"] for p in by_event["Email Bounced"]} == {"hard", "soft"}
    fast = [p for p in by_event["Form Submitted"] if p["form_fill_seconds"] < 2]
    honeypot = [p for p in by_event["Form Submitted"] if p.get("honeypot")]
    assert 20 <= len(fast) < len(by_event["Form Submitted"]) / 5
    assert 10 <= len(honeypot) < len(by_event["Form Submitted"]) / 10


def test_pages_carry_utm_campaigns_and_browser_context(dataset: DemoDataset) -> None:
    pages = [m for m in dataset.messages if m["type"] == "page"]
    with_campaign = [m for m in pages if "campaign" in m["context"]]
    assert len(with_campaign) > len(pages) / 10
    assert all({"source", "medium", "name"} <= set(m["context"]["campaign"]) for m in with_campaign)
    assert all("userAgent" in m["context"] and "ip" in m["context"] for m in pages)
    names = {m["name"] for m in pages}
    assert {"Home", "Pricing", "Blog", "Product", "Careers", "Customers"} <= names
    campaigns = {m["context"]["campaign"]["name"] for m in with_campaign}
    assert {row["campaign"] for row in dataset.spend} <= campaigns | {"direct"}


def test_traits_feed_the_fit_rules(traits_by_user: dict[str, dict[str, Any]]) -> None:
    people = list(traits_by_user.values())
    seniorities = {p["seniority"] for p in people if "seniority" in p}
    departments = {p["department"] for p in people if "department" in p}
    assert seniorities == SENIORITIES
    assert departments == DEPARTMENTS
    industries = {p["company"]["industry"] for p in people if "company" in p}
    assert industries >= INDUSTRIES
    sizes = [p["company"]["employees"] for p in people if "company" in p]
    assert any(s < 20 for s in sizes)
    assert sum(200 <= s <= 5000 for s in sizes) > len(sizes) / 4
    assert any(s > 5000 for s in sizes)
    titles = Counter(p["title"] for p in people if "title" in p)
    assert len(titles) >= 40
    for title in ("VP Marketing", "Sr. Director, Demand Gen", "Head of RevOps", "Student"):
        assert titles[title] > 0, title
    for p in people:
        if p.get("title") == "Student":
            assert p["seniority"] == "student"
        if p.get("title") == "VP Marketing":
            assert (p["seniority"], p["department"]) == ("vp", "marketing")
    assert sum("phone" in p for p in people) > len(people) / 5
    assert {p["lead_source"] for p in people} == set(CHANNELS)


def test_population_mix(dataset: DemoDataset, traits_by_user: dict[str, dict[str, Any]]) -> None:
    people = list(traits_by_user.values())
    domains = Counter(_domain(p) for p in people)
    students = [p for p in people if _domain(p).endswith((".edu", ".ac.uk"))]
    assert len(students) > 50
    assert sum(domains[d] for d in COMPETITORS) > 20
    assert sum(domains[d] for d in FREE_MAIL) > 100
    assert sum(domains[d] for d in DISPOSABLE) > 20
    assert sum(p["country"] in UNSERVED for p in people) > 50
    assert 50 < sum(p["consent_marketing"] is False for p in people) < len(people) / 10
    role = [p for p in people if str(p["email"]).startswith(("info@", "sales@"))]
    assert role
    assert any(p.get("first_name") == "Asdf" or p.get("title") == "asdf" for p in people)
    # Accounts: several people share a company domain, many companies have just one.
    company_domains = Counter(
        d for d in domains.elements() if d not in FREE_MAIL | DISPOSABLE | COMPETITORS
    )
    committees = [d for d, n in company_domains.items() if n >= 5]
    singles = [d for d, n in company_domains.items() if n == 1]
    assert len(committees) >= 50 and len(singles) >= 300
    events = Counter(m.get("event") for m in dataset.messages)
    assert events["Demo Requested"] >= 100
    assert events["Unsubscribed"] >= 50
    careers = {
        m["anonymousId"]
        for m in dataset.messages
        if m["type"] == "page" and m["properties"]["path"].startswith("/careers")
    }
    assert len(careers) >= 100
    assert sum(m["type"] == "group" for m in dataset.messages) >= 100


def test_activity_is_spread_with_bursts_and_weekly_rhythm(dataset: DemoDataset) -> None:
    days = Counter(_parse(m["timestamp"]).date() for m in dataset.messages)
    assert len(days) >= DAYS - 1
    weekday = [n for d, n in days.items() if d.weekday() < 5]
    weekend = [n for d, n in days.items() if d.weekday() >= 5]
    assert statistics.mean(weekday) > 1.5 * statistics.mean(weekend)
    weeks = Counter(_parse(m["timestamp"]).isocalendar()[:2] for m in dataset.messages)
    assert len(weeks) >= 25
    # People who were active long ago and went quiet: recency matters.
    last_seen: dict[str, datetime] = {}
    for message in dataset.messages:
        if "userId" in message:
            last_seen[message["userId"]] = _parse(message["timestamp"])
    cold = [u for u, at in last_seen.items() if at < NOW - timedelta(days=90)]
    assert len(cold) > len(last_seen) / 20


# --------------------------------------------------------------------------- sales plans


def test_every_identified_person_has_a_well_formed_plan(
    dataset: DemoDataset, definition: dict[str, Any]
) -> None:
    identified = {m["userId"] for m in dataset.messages if m["type"] == "identify"}
    assert set(dataset.sales_plans) == identified
    reasons: dict[str, list[str]] = definition["reasons"]
    for plan in dataset.sales_plans.values():
        previous: str | None = None
        for step in plan:
            assert isinstance(step, SalesStep)
            assert step.action in ACTIONS
            assert step.after_hours >= 0
            if step.action in {"reject", "recycle", "disqualify", "lost"}:
                assert step.reason in reasons[step.action], step
            else:
                assert step.reason is None, step
            if step.action in {"convert", "won"}:
                assert step.amount is not None and step.amount > 0, step
            else:
                assert step.amount is None, step
            if step.action == "convert":
                assert step.amount is not None and 5_000 <= step.amount <= 150_000
            allowed_after = {
                None: {"touch"},
                "touch": {"accept", "reject", "recycle", "disqualify"},
                "accept": {"convert", "reject", "recycle"},
                "convert": {"won", "lost"},
            }
            assert step.action in allowed_after.get(previous, set()), (previous, step)
            previous = step.action


def test_sales_outcomes_have_realistic_rates(dataset: DemoDataset) -> None:
    plans = list(dataset.sales_plans.values())
    touched = [p for p in plans if p]
    assert len(touched) < len(plans), "some MQLs are never touched"
    first_touch = [p[0].after_hours for p in touched]
    assert any(h <= 0.25 for h in first_touch)
    assert sum(h > 2 for h in first_touch) > len(first_touch) / 10, "some breach the SLA"

    def has(plan: tuple[SalesStep, ...], action: str) -> bool:
        return any(step.action == action for step in plan)

    # Hand-raisers with a served, non-excluded profile approximate the MQL population.
    hand_raisers = {m["userId"] for m in dataset.messages if m.get("event") in {"Demo Requested"}}
    sample = [dataset.sales_plans[u] for u in hand_raisers]
    accepted = [p for p in sample if has(p, "accept")]
    converted = [p for p in sample if has(p, "convert")]
    won = [p for p in converted if has(p, "won")]
    assert 0.45 < len(accepted) / len(sample) < 0.9
    assert 0.15 < len(converted) / len(sample) < 0.45
    assert 0.1 < len(won) / len(converted) < 0.4
    reasons = Counter(s.reason for p in plans for s in p if s.reason)
    assert {"student", "competitor", "spam", "out_of_territory", "duplicate"} <= set(reasons)


def test_plans_follow_the_profile(
    dataset: DemoDataset, traits_by_user: dict[str, dict[str, Any]]
) -> None:
    def accept_rate(users: list[str]) -> float:
        plans = [dataset.sales_plans[u] for u in users if dataset.sales_plans[u]]
        return sum(any(s.action == "accept" for s in p) for p in plans) / len(plans)

    senior = [
        u
        for u, t in traits_by_user.items()
        if t.get("seniority") in {"vp", "c_level", "director", "head"}
        and t.get("department") in {"marketing", "sales", "revenue_operations"}
        and t.get("country") in {"US", "GB", "DE", "FR", "CA", "NL"}
        and _domain(t) not in FREE_MAIL | DISPOSABLE | COMPETITORS
    ]
    students = [u for u, t in traits_by_user.items() if t.get("seniority") == "student"]
    assert accept_rate(senior) > 0.7
    assert accept_rate(students) < 0.3


# --------------------------------------------------------------------------- spend


def test_spend_covers_every_campaign_and_month(dataset: DemoDataset) -> None:
    months = {row["month"] for row in dataset.spend}
    start = NOW - timedelta(days=DAYS)
    expected_months: set[str] = set()
    cursor = start.replace(day=1)
    while cursor <= NOW:
        expected_months.add(f"{cursor.year:04d}-{cursor.month:02d}")
        cursor = (cursor + timedelta(days=32)).replace(day=1)
    assert months == expected_months
    pairs = {(row["channel"], row["campaign"]) for row in dataset.spend}
    assert {channel for channel, _ in pairs} == set(CHANNELS)
    assert all(sum(1 for c, _ in pairs if c == ch) >= 2 for ch in CHANNELS)
    for row in dataset.spend:
        assert set(row) == {"channel", "campaign", "month", "amount", "currency"}
        assert row["currency"] == "USD" and row["amount"] >= 0
    rows = {(row["channel"], row["campaign"], row["month"]) for row in dataset.spend}
    assert len(rows) == len(dataset.spend) == len(pairs) * len(months)
    by_channel: Counter[str] = Counter()
    for row in dataset.spend:
        by_channel[row["channel"]] += row["amount"]
    assert by_channel["paid_search"] > 3 * by_channel["organic_search"]
    assert by_channel["paid_social"] > 3 * by_channel["email"]

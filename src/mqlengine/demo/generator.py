"""Deterministic synthetic B2B marketing history for `mql demo` and the benchmarks.

Why synthetic: the demo and the benchmarks need a history that exercises every rule of the
example definition (fit traits, decayed intent, exclusions, MQL paths) and the sales feedback
loop, without shipping anyone's real data. Everything is drawn from one seeded
`random.Random` and `now` is a parameter, so the same arguments always give the same dataset.
The values it draws from (names, titles, companies, campaigns, pages) are the tables of
:mod:`mqlengine.demo.tables`; who the visitors are comes from :mod:`mqlengine.demo.people`,
what they do is simulated here.

Messages follow the Segment spec (identify / track / page / group). Page views stay
`type: page`; the engine treats them as the definition's `Page Viewed` event.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import math
import random
import struct
import tempfile
import weakref
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import IO, Any, Final

import orjson

from mqlengine.demo.people import Person, Population
from mqlengine.demo.tables import (
    ACCOUNT_EXCLUDED,
    ACTION_PAGES,
    ARCHETYPES,
    ASSETS,
    BLOG,
    BOT_USER_AGENT,
    CAMPAIGNS,
    CHANNELS,
    COUNTRIES,
    DAY_MS,
    FORMS,
    GROUP_ORDER,
    HOUR_MS,
    HOUR_WEIGHTS,
    INTERESTS,
    IP_HEADS,
    MINUTE_MS,
    PAGE_GROUPS,
    REASONS,
    SECTION_NAMES,
    USER_AGENTS,
    VERDICTS,
    WEEKDAY_FACTOR,
    Campaign,
)

__all__ = ["CHANNELS", "DemoDataset", "SalesStep", "generate"]


@dataclass(frozen=True)
class SalesStep:
    """One thing sales does to an MQL; replayed by the demo to close the feedback loop."""

    action: str  # touch, accept, reject, recycle, disqualify, convert, won, lost
    after_hours: float  # delay after the previous step (first step: after becoming an MQL)
    reason: str | None = None  # required for reject/recycle/disqualify/lost
    amount: float | None = None  # convert: pipeline amount; won: revenue


class DemoDataset:
    """The generated history: messages, sales plans, spend.

    The generator keeps its messages serialised and compressed per day
    (:class:`DaySpool`), so a history of millions of messages costs a few bytes each until
    it is read: :meth:`days` hands them over a day at a time (what the demo ingests),
    :attr:`messages` all at once (a list, built on first use). A dataset may also be made
    from a list of messages."""

    def __init__(
        self,
        messages: list[dict[str, Any]] | None = None,
        sales_plans: dict[str, tuple[SalesStep, ...]] | None = None,
        spend: list[dict[str, Any]] | None = None,
        channels: tuple[str, ...] = (),
        *,
        spool: DaySpool | None = None,
    ) -> None:
        self._messages = messages
        self._spool = spool
        self.sales_plans = sales_plans or {}  # keyed by userId
        self.spend = spend or []  # {channel, campaign, month: "YYYY-MM", amount, currency}
        self.channels = channels

    @property
    def message_count(self) -> int:
        if self._spool is not None:
            return self._spool.total
        return len(self._messages or [])

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Every Segment-spec message, sorted by timestamp (materialised on first use)."""
        if self._messages is None:
            self._messages = [m for _, day in self.days() for m in day]
        return self._messages

    @property
    def spooled(self) -> bool:
        """Whether the messages can be read a day at a time (:meth:`days`)."""
        return self._spool is not None

    @property
    def last_day(self) -> int:
        """The last day (from the start of the window) with a message; -1 without any."""
        return max(self._spool.counts, default=-1) if self._spool is not None else -1

    def days(self) -> Iterator[tuple[int, list[dict[str, Any]]]]:
        """(day, its messages) for every day with messages, in order; a day counts from the
        start of the window. Only for a generated dataset (:attr:`spooled`)."""
        if self._spool is None:
            raise ValueError("a dataset made from a list of messages is not kept by day")
        yield from self._spool.days()


_RECORD: Final = struct.Struct("<qqI")  # moment (ms), emission order, payload length
_BLOCK: Final = 1 << 16  # bytes of a day's records compressed together


class DaySpool:
    """Messages bucketed by day (from ``start_ms``), serialised with orjson and compressed
    in blocks; read back a day at a time in (moment, emission) order, with their message
    ids (``demo-N``, N counting across days) and timestamps added. Full blocks go to an
    anonymous temporary file (about 100 bytes a message: 250 MB at 50,000 persons stays
    out of memory); only each day's open block is held."""

    def __init__(self, start_ms: int) -> None:
        self.start_ms = start_ms
        self.iso_days: dict[int, str] = {}
        self.open: dict[int, bytearray] = {}
        self.blocks: dict[int, list[tuple[int, int]]] = {}  # (offset, length) in the file
        self.counts: dict[int, int] = {}
        self.total = 0
        self._file: IO[bytes] | None = None
        self._end = 0  # where the next block goes in the file

    def add(self, at: int, seq: int, payload: bytes) -> None:
        day = (at - self.start_ms) // DAY_MS
        buffer = self.open.get(day)
        if buffer is None:
            buffer = self.open[day] = bytearray()
            self.blocks[day] = []
            self.counts[day] = 0
        buffer += _RECORD.pack(at, seq, len(payload))
        buffer += payload
        self.counts[day] += 1
        self.total += 1
        if len(buffer) >= _BLOCK:
            self._spill(day, zlib.compress(buffer, 1))
            self.open[day] = bytearray()

    def _spill(self, day: int, block: bytes) -> None:
        if self._file is None:
            # lives as long as the spool: closed (and so deleted) when the spool goes
            self._file = tempfile.TemporaryFile(prefix="mql-demo-")  # noqa: SIM115
            weakref.finalize(self, self._file.close)
        self._file.seek(self._end)
        self._file.write(block)
        self.blocks[day].append((self._end, len(block)))
        self._end += len(block)

    def _block(self, offset: int, length: int) -> bytes:
        assert self._file is not None
        self._file.seek(offset)
        return zlib.decompress(self._file.read(length))

    def _records(self, day: int) -> list[tuple[int, int, bytes]]:
        records: list[tuple[int, int, bytes]] = []
        size = _RECORD.size
        spilled = [self._block(offset, length) for offset, length in self.blocks[day]]
        for block in [*spilled, bytes(self.open[day])]:
            view = memoryview(block)
            offset = 0
            while offset < len(block):
                at, seq, length = _RECORD.unpack_from(block, offset)
                offset += size
                records.append((at, seq, bytes(view[offset : offset + length])))
                offset += length
        records.sort()
        return records

    def iso(self, ms: int) -> str:
        day, rem = divmod(ms, DAY_MS)
        prefix = self.iso_days.get(day)
        if prefix is None:
            prefix = (date(1970, 1, 1) + timedelta(days=day)).isoformat()
            self.iso_days[day] = prefix
        hours, rem = divmod(rem, HOUR_MS)
        minutes, rem = divmod(rem, MINUTE_MS)
        seconds, millis = divmod(rem, 1000)
        return f"{prefix}T{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}Z"

    def days(self) -> Iterator[tuple[int, list[dict[str, Any]]]]:
        n = 0
        iso = self.iso
        loads = orjson.loads
        for day in sorted(self.counts):
            messages = []
            for at, _, payload in self._records(day):
                message = loads(payload)
                message["messageId"] = f"demo-{n}"
                message["timestamp"] = iso(at)
                messages.append(message)
                n += 1
            yield day, messages


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_SITE: Final = "https://www.lumen-analytics.example"


def _cumulative(weights: Sequence[float]) -> list[float]:
    return list(itertools.accumulate(weights))


@functools.cache
def _page_name(path: str) -> str:
    return SECTION_NAMES.get(path.split("/")[1], "Page")


@functools.cache
def _page_title(path: str) -> str:
    slug = path.rstrip("/").rsplit("/", 1)[-1]
    label = slug.replace("-", " ").title() if slug else "Home"
    return f"{label} | Lumen Analytics"


@dataclass(frozen=True)
class _Send:
    at: int
    campaign: Campaign
    subject: str
    email_id: str


def _server(name: str, version: str) -> dict[str, Any]:
    return {"library": {"name": name, "version": version}}


class _Simulation:
    """Holds the seeded RNG and the growing output; one instance per `generate` call."""

    def __init__(self, rng: random.Random, now_ms: int, days: int) -> None:
        self.rng = rng
        self.now_ms = now_ms
        self.start_ms = now_ms - days * DAY_MS
        self.day0_ms = self.start_ms // DAY_MS * DAY_MS
        self.grid = (now_ms - self.day0_ms) // DAY_MS + 1  # day indices 0..grid-1
        self.out = DaySpool(self.start_ms)
        self.seq = itertools.count()
        self.hour_cum = _cumulative(HOUR_WEIGHTS)
        self.interest_cum = {k: _cumulative(v) for k, v in INTERESTS.items()}
        self.campaign_days = {c.name: self._day_weights(c) for c in CAMPAIGNS}
        self.by_channel = {ch: [c for c in CAMPAIGNS if c.channel == ch] for ch in CHANNELS}
        self.by_name = {c.name: c for c in CAMPAIGNS}
        self.revisit_paid = self.by_channel["paid_social"] + self.by_channel["paid_search"]
        self.people = Population(rng, self.by_channel)
        self.sends = self._email_schedule()
        self.send_times = [s.at for s in self.sends]
        self.webinars = self._webinars()

    # ----------------------------------------------------------------- calendar

    def weekday(self, day: int) -> int:
        return (self.day0_ms // DAY_MS + day + 3) % 7  # 1970-01-01 was a Thursday

    def flight_day(self, fraction: float) -> int:
        return 1 + int(fraction * (self.grid - 2))

    def _day_weights(self, campaign: Campaign) -> list[float]:
        """Cumulative weights of first-touch days: weekdays, growth, campaign bursts."""
        weights = [0.0]
        for day in range(1, self.grid):
            factor = 0.25 if campaign.flights else 1.0
            for fraction in campaign.flights:
                centre = self.flight_day(fraction)
                if centre - 21 <= day <= centre:
                    factor = max(factor, 1.0 + 4.0 * (1.0 - (centre - day) / 21))
                elif centre < day <= centre + 7:
                    factor = max(factor, 1.5)
            trend = 1.0 + 0.3 * day / self.grid
            # Journeys already under way when the window opens, so volume starts steady.
            trend += 2.5 * math.exp(-day / 21)
            weights.append(WEEKDAY_FACTOR[self.weekday(day)] * trend * factor)
        return _cumulative(weights)

    def _email_schedule(self) -> list[_Send]:
        rng = self.rng
        sends: list[_Send] = []

        def add(day: int, hour: int, name: str, subject: str) -> None:
            if 1 <= day < self.grid:
                at = self.day0_ms + day * DAY_MS + hour * HOUR_MS + rng.randrange(HOUR_MS)
                sends.append(_Send(at, self.by_name[name], subject, f"em-{name}-{day}"))

        for day in range(1, self.grid):
            if self.weekday(day) == 1:
                add(day, 14, "weekly-newsletter", "This week in B2B analytics")
            elif self.weekday(day) == 3 and day % 14 < 7:
                add(day, 16, "product-launch-announcement", "What's new in Lumen")
        for day in range(3, self.grid, 9):
            add(day, 13, "nurture-mid-funnel", "How Northwind cut CAC by 30%")
        launch = self.by_name["product-launch-announcement"]
        add(self.flight_day(launch.flights[0]), 15, launch.name, "Introducing Dashboards 2.0")
        for campaign in CAMPAIGNS:
            if campaign.source == "webinar":
                centre = self.flight_day(campaign.flights[0])
                for before in (14, 7, 1):
                    add(centre - before, 15, campaign.name, "You're invited: live webinar")
        sends.sort(key=lambda s: s.at)
        return sends

    def _webinars(self) -> list[tuple[int, Campaign]]:
        result = []
        for campaign in CAMPAIGNS:
            if campaign.source == "webinar":
                day = self.flight_day(campaign.flights[0])
                while self.weekday(day) != 3 and day > 1:  # webinars run on Thursdays
                    day -= 1
                result.append((self.day0_ms + day * DAY_MS + 16 * HOUR_MS, campaign))
        return result

    def local_time(self, day: int, tz_ms: int) -> int:
        """A moment on `day` drawn from business hours on the person's own clock."""
        rng = self.rng
        hour = bisect.bisect(self.hour_cum, rng.random() * self.hour_cum[-1])
        at = self.day0_ms + day * DAY_MS + hour * HOUR_MS + rng.randrange(HOUR_MS) - tz_ms
        return max(at, self.start_ms + rng.randrange(1000, HOUR_MS))

    # ----------------------------------------------------------------- output

    def emit(self, at: int, message: dict[str, Any]) -> None:
        """Keep the message as it is now (serialised: later changes to the objects it
        names do not reach it, and no two messages share an object once read back)."""
        if self.start_ms <= at <= self.now_ms:
            self.out.add(at, next(self.seq), orjson.dumps(message))

    def track(
        self,
        at: int,
        anon: str | None,
        uid: str | None,
        context: dict[str, Any],
        event: str,
        properties: dict[str, Any],
    ) -> int:
        message: dict[str, Any] = {"type": "track", "event": event, "properties": properties}
        if uid is not None:
            message["userId"] = uid
        if anon is not None:
            message["anonymousId"] = anon
        message["context"] = context
        self.emit(at, message)
        return at + 1

    def page(
        self,
        at: int,
        anon: str,
        uid: str | None,
        context: dict[str, Any],
        path: str,
        campaign: dict[str, str] | None,
    ) -> int:
        message: dict[str, Any] = {"type": "page", "anonymousId": anon}
        if uid is not None:
            message["userId"] = uid
        url = _SITE + path
        properties = {"path": path, "url": url, "title": _page_title(path), "referrer": ""}
        ctx = context
        if campaign is not None:
            ctx = {**context, "campaign": campaign}
            medium = campaign["medium"]
            if medium == "organic":
                properties["referrer"] = f"https://www.{campaign['source']}.com/"
            elif medium != "(none)":
                search = (
                    f"?utm_source={campaign['source']}&utm_medium={medium}"
                    f"&utm_campaign={campaign['name']}"
                )
                properties["url"] = url + search
                properties["search"] = search
        message["name"] = _page_name(path)
        message["properties"] = properties
        message["context"] = ctx
        self.emit(at, message)
        return at + 1

    def new_ip(self) -> str:
        rng = self.rng
        return (
            f"{rng.choice(IP_HEADS)}.{rng.randrange(256)}."
            f"{rng.randrange(256)}.{rng.randrange(1, 255)}"
        )

    # ----------------------------------------------------------------- journeys

    def session_days(self, person: Person) -> list[int]:
        """Days with a website visit: first touch near the campaign, then sparser revisits."""
        rng = self.rng
        behaviour = person.behaviour
        count = rng.randint(*behaviour.sessions)
        if person.archetype not in {"spam", "anonymous"} and rng.random() < 0.02:
            count *= 3  # a few heavy readers
        last_day = self.grid - 1
        if person.cold:  # active long ago, then went quiet
            first = rng.randint(1, max(1, int(0.4 * last_day)))
            horizon = min(last_day, first + rng.randint(7, 35))
        else:
            cum = self.campaign_days[person.campaign.name]
            first = min(max(bisect.bisect(cum, rng.random() * cum[-1]), 1), last_day)
            horizon = last_day
        days = [first]
        day = first
        for _ in range(count - 1):
            day += int(rng.expovariate(1.0 / behaviour.gap_days))
            if self.weekday(day) >= 5 and rng.random() < 0.5:
                day += 7 - self.weekday(day)  # most weekend intentions wait for Monday
            if day > horizon:
                break
            days.append(day)
        return days

    def plan_actions(self, person: Person) -> tuple[str, list[str]]:
        """The hand-raising actions a person takes and which one made them known."""
        rng = self.rng
        behaviour = person.behaviour
        actions: list[str] = []
        if rng.random() < behaviour.demo:
            actions.append("demo")
        if rng.random() < behaviour.trial:
            actions.append("trial")
        actions += ["download"] * rng.randint(*behaviour.downloads)
        rng.shuffle(actions)
        if person.channel == "events" and person.campaign.source == "webinar":
            trigger = "webinar"
        elif person.imported:
            trigger = "import"
        elif "download" in actions and rng.random() < 0.7:
            actions.remove("download")
            trigger = "download"
        elif actions and rng.random() < 0.5:
            trigger = actions.pop(0)
        else:
            trigger = "contact" if rng.random() < 0.3 else "newsletter"
        return trigger, actions

    def journey(self, person: Person) -> None:
        rng = self.rng
        behaviour = person.behaviour
        user_id = person.user_id
        days = self.session_days(person)
        n = len(days)
        if person.known_first:
            identify_index = 0
        elif rng.random() < behaviour.identify:
            identify_index = min(n - 1, int(rng.triangular(0, n, 0.3 * n)))
        else:
            identify_index = n  # stays anonymous
        trigger, actions = self.plan_actions(person)
        per_session: dict[int, list[str]] = {}
        lowest = identify_index + (1 if person.imported else 0)
        if lowest < n:
            for action in actions:
                index = rng.randint(lowest, n - 1)
                if action != "download":  # demos and trials come later in a journey
                    index = max(index, rng.randint(lowest, n - 1))
                per_session.setdefault(index, []).append(action)
        device2: str | None = None
        device2_sessions: set[int] = set()
        if n >= 3 and rng.random() < 0.08:  # the same person on a phone
            device2 = self.people.new_anonymous_id()
            device2_sessions = {rng.randrange(n), rng.randrange(n)}
        bot = person.archetype == "spam"
        ua = BOT_USER_AGENT if bot else rng.choice(USER_AGENTS)
        ua2 = rng.choice(USER_AGENTS[-2:])
        ip = self.new_ip()
        locale = COUNTRIES[person.country].locale
        linked: set[str] = set()
        identified_at = -1
        trial_at = -1
        cursor = 0
        for index, day in enumerate(days):
            t = max(self.local_time(day, person.tz_ms), cursor + rng.randint(5, 90) * MINUTE_MS)
            on_device2 = device2 is not None and index in device2_sessions
            anon = device2 if device2 is not None and on_device2 else person.anonymous_id
            context: dict[str, Any] = {"userAgent": ua2 if on_device2 else ua, "ip": ip}
            context["locale"] = locale
            uid: str | None = None
            if identified_at >= 0:
                uid = user_id
                if anon not in linked:  # logging in on this browser links its history
                    linked.add(anon)
                    traits = {"email": person.traits["email"]}
                    link = {"type": "identify", "userId": uid, "anonymousId": anon}
                    self.emit(t, {**link, "traits": traits, "context": context})
                    t += rng.randint(1, 5) * 1000
            if not (index == identify_index and person.known_first):
                pages = 0 if bot else 1 + int(rng.expovariate(1.0 / behaviour.pages_per_session))
                t = self.pages(t, anon, uid, context, behaviour.interest, pages, person, index)
            if index == identify_index:
                browser = None if person.imported else anon
                identified_at, t = self.identify(person, t, browser, context, trigger)
                if browser is not None:
                    linked.add(browser)
                uid = user_id
                if trigger == "trial":
                    trial_at = t
            for action in per_session.get(index, ()):
                t += rng.randint(20, 600) * 1000
                t = self.page(t, anon, uid, context, ACTION_PAGES[action], None)
                t = self.form_action(person, t, anon, uid, context, action)
                if action == "trial" and trial_at < 0:
                    trial_at = t
            cursor = t
        if identified_at < 0 or identified_at > self.now_ms:
            return
        person.identified = True
        person.hand_raised = trial_at >= 0 or trigger == "demo" or "demo" in actions
        self.email_history(person, identified_at)
        self.webinar_history(person, identified_at, trigger == "webinar")
        if 0 <= trial_at <= self.now_ms:
            self.product_history(person, trial_at)

    def pages(
        self,
        t: int,
        anon: str,
        uid: str | None,
        context: dict[str, Any],
        interest: str,
        count: int,
        person: Person,
        index: int,
    ) -> int:
        """One visit: a landing page carrying the UTM campaign, then pages of interest."""
        rng = self.rng
        if count <= 0:
            return t
        source = person.campaign
        if index > 0:  # revisits: mostly direct or search, sometimes retargeting
            r = rng.random()
            if r < 0.35:
                source = self.by_name["direct"]
            elif r < 0.6:
                source = rng.choice(self.by_channel["organic_search"])
            elif r < 0.75:
                source = rng.choice(self.revisit_paid)
        landing = rng.choice(BLOG) if source.landing == "*blog" else source.landing
        campaign = {"source": source.source, "medium": source.medium, "name": source.name}
        t = self.page(t, anon, uid, context, landing, campaign)
        cum = self.interest_cum[interest]
        total = cum[-1]
        for _ in range(count - 1):
            t += int(rng.lognormvariate(10.8, 0.9))  # ~50 s median between pages
            group = GROUP_ORDER[bisect.bisect(cum, rng.random() * total)]
            t = self.page(t, anon, uid, context, rng.choice(PAGE_GROUPS[group]), None)
        return t

    def identify(
        self,
        person: Person,
        t: int,
        anon: str | None,
        context: dict[str, Any],
        trigger: str,
    ) -> tuple[int, int]:
        """The identify call (plus group call and the form behind it): (identify time, end)."""
        rng = self.rng
        traits = person.traits
        light_form = trigger == "newsletter" and person.archetype in {"browser", "unsubscriber"}
        if light_form and rng.random() < 0.5:  # light forms only ask for an e-mail address
            keys = ("email", "country", "consent_marketing", "lead_source")
            traits = {k: traits[k] for k in keys}
        t += rng.randint(2, 40) * 1000
        identified_at = t
        message: dict[str, Any] = {"type": "identify", "userId": person.user_id, "traits": traits}
        if anon is not None:
            message["anonymousId"] = anon
            message["context"] = context
        else:
            message["context"] = _server("lead-import", "1.4.0")
        self.emit(t, message)
        if person.group is not None:
            t += rng.randint(200, 3000)
            group: dict[str, Any] = {"type": "group", "userId": person.user_id, **person.group}
            if anon is not None:
                group["anonymousId"] = anon
            self.emit(t, group)
        if trigger != "import":
            t = self.form_action(person, t + 500, anon, person.user_id, context, trigger)
        return identified_at, t + 1

    def form_action(
        self,
        person: Person,
        t: int,
        anon: str | None,
        uid: str | None,
        context: dict[str, Any],
        action: str,
    ) -> int:
        """A form submission and the event it stands for (demo, trial, download...)."""
        rng = self.rng
        bot = person.archetype == "spam"
        form_id = FORMS[action]
        fill = rng.uniform(0.3, 1.9) if bot and rng.random() < 0.7 else rng.uniform(6, 240)
        honeypot = "http://cheap-seo.example/" if bot and rng.random() < 0.4 else ""
        form: dict[str, Any] = {
            "form_id": form_id,
            "form_fill_seconds": round(fill, 1),
            "honeypot": honeypot,
        }
        if action == "webinar":
            form["webinar"] = person.campaign.name
        t = self.track(t, anon, uid, context, "Form Submitted", form)
        t += rng.randint(300, 4000)
        if action == "demo":
            interest = rng.choice(("attribution", "lead scoring", "dashboards"))
            properties: dict[str, Any] = {"form_id": form_id, "product_interest": interest}
            t = self.track(t, anon, uid, context, "Demo Requested", properties)
        elif action == "trial":
            properties = {"plan": "pro-trial", "trial_days": 14}
            t = self.track(t, anon, uid, context, "Trial Started", properties)
        elif action == "download":
            asset, kind = rng.choice(ASSETS)
            properties = {"asset": asset, "asset_type": kind}
            t = self.track(t, anon, uid, context, "Content Downloaded", properties)
        return t

    # ----------------------------------------------------------------- server-side sources

    def email_history(self, person: Person, identified_at: int) -> None:
        """Marketing e-mail engagement: opens, clicks (with the visit), bounces, unsubscribes."""
        rng = self.rng
        behaviour = person.behaviour
        if person.traits.get("consent_marketing") is not True:
            return
        uid = person.user_id
        open_rate = rng.uniform(*behaviour.open_rate)
        cold_after = identified_at + rng.randint(10, 40) * DAY_MS if person.cold else self.now_ms
        email = str(person.traits["email"])
        undeliverable = email.endswith(("10minutemail.com", "trashmail.com"))
        undeliverable = undeliverable or person.archetype == "bad_data"
        undeliverable = undeliverable or (person.archetype == "spam" and rng.random() < 0.5)
        bounce = "hard" if undeliverable else None
        unsubscribe_after = rng.randint(1, 6) if person.archetype == "unsubscriber" else -1
        opens = 0
        esp = _server("marketo-webhook", "2.0")
        locale = COUNTRIES[person.country].locale
        start = bisect.bisect(self.send_times, identified_at + HOUR_MS)
        for send in self.sends[start:]:
            name = send.campaign.name
            if bounce is not None or rng.random() < 0.004:
                kind = bounce or "soft"
                properties = {"campaign": name, "email_id": send.email_id, "bounce_type": kind}
                at = send.at + rng.randint(5, 600) * 1000
                self.track(at, None, uid, esp, "Email Bounced", properties)
                if kind == "hard":
                    return
                continue
            rate = open_rate if send.at < cold_after else open_rate * 0.05
            if rng.random() >= rate:
                continue
            opens += 1
            at = send.at + int(min(rng.lognormvariate(8.2, 1.6), 259_200.0) * 1000)
            properties = {"campaign": name, "email_id": send.email_id, "subject": send.subject}
            self.track(at, None, uid, esp, "Email Opened", properties)
            if opens == unsubscribe_after or (opens > 2 and rng.random() < 0.003):
                at += rng.randint(5, 120) * 1000
                properties = {"campaign": name, "list": "marketing"}
                self.track(at, None, uid, esp, "Unsubscribed", properties)
                return
            if rng.random() < behaviour.click_rate:
                at += rng.randint(3, 300) * 1000
                landing = send.campaign.landing
                path = rng.choice(BLOG) if landing == "*blog" else landing
                campaign = {"source": send.campaign.source, "medium": "email", "name": name}
                url = (
                    f"{_SITE}{path}?utm_source={campaign['source']}"
                    f"&utm_medium=email&utm_campaign={name}"
                )
                properties = {"campaign": name, "url": url, "email_id": send.email_id}
                self.track(at, None, uid, esp, "Email Link Clicked", properties)
                context = {"userAgent": rng.choice(USER_AGENTS), "ip": self.new_ip()}
                context["locale"] = locale
                self.page(at + 1500, person.anonymous_id, uid, context, path, campaign)

    def webinar_history(self, person: Person, identified_at: int, registered: bool) -> None:
        """Registrations (a browser form) and attendance (synced from the webinar platform)."""
        rng = self.rng
        platform = _server("zoom-webinar-sync", "3.1")
        for at, campaign in self.webinars:
            if at <= identified_at + HOUR_MS:
                continue
            if not (registered and campaign is person.campaign):
                if rng.random() >= person.behaviour.webinar:
                    continue
                lo = max(identified_at + HOUR_MS, at - 14 * DAY_MS)
                hi = at - 2 * HOUR_MS
                if lo >= hi:
                    continue
                form = {
                    "form_id": "webinar-registration",
                    "form_fill_seconds": round(rng.uniform(8, 90), 1),
                    "honeypot": "",
                    "webinar": campaign.name,
                }
                context = {"userAgent": rng.choice(USER_AGENTS), "ip": self.new_ip()}
                reg_at = rng.randint(lo, hi)
                self.track(
                    reg_at, person.anonymous_id, person.user_id, context, "Form Submitted", form
                )
            if rng.random() < 0.45:
                properties = {"webinar": campaign.name, "duration_minutes": rng.randint(5, 60)}
                attended_at = at + rng.randint(0, 12) * MINUTE_MS
                self.track(
                    attended_at, None, person.user_id, platform, "Webinar Attended", properties
                )

    def product_history(self, person: Person, trial_at: int) -> None:
        """Product usage after a trial: activation, then events no rule scores."""
        rng = self.rng
        behaviour = person.behaviour
        if rng.random() >= behaviour.activation:
            return
        app = _server("analytics-node", "6.2.0")
        uid = person.user_id
        workspace = f"ws_{rng.getrandbits(32):08x}"
        activated = trial_at + int(rng.lognormvariate(2.5, 1.2) * HOUR_MS)
        properties: dict[str, Any] = {"workspace_id": workspace, "members": rng.randint(1, 12)}
        self.track(activated, None, uid, app, "Workspace Activated", properties)
        span = rng.randint(10, 90)
        first_day = (activated - self.day0_ms) // DAY_MS
        for _ in range(rng.randint(*behaviour.product_events)):
            day = first_day + int(rng.random() ** 1.6 * span)
            at = max(self.local_time(day, person.tz_ms), activated + MINUTE_MS)
            if rng.random() < 0.7:
                kind = rng.choice(("funnel", "attribution", "cohort", "pipeline"))
                properties = {"workspace_id": workspace, "report_type": kind}
                self.track(at, None, uid, app, "Report Created", properties)
            else:
                target = rng.choice(("slack", "email", "link"))
                properties = {"workspace_id": workspace, "share_target": target}
                self.track(at, None, uid, app, "Dashboard Shared", properties)

    # ----------------------------------------------------------------- sales

    def quality(self, person: Person) -> float:
        """Latent lead quality in [0, 1]: fit with the ideal buyer, plus noise."""
        traits = person.traits
        company = traits.get("company")
        employees = 0
        industry = None
        if isinstance(company, dict):
            employees = int(company.get("employees", 0))
            industry = company.get("industry")
        seniority = {"c_level": 1.0, "vp": 1.0, "director": 0.95, "head": 0.9, "manager": 0.6}
        score = 0.35 * seniority.get(str(traits.get("seniority")), 0.3)
        target_department = traits.get("department") in {"marketing", "sales", "revenue_operations"}
        score += 0.25 * (1.0 if target_department else 0.3)
        size = 1.0 if 200 <= employees <= 5000 else 0.8 if employees > 5000 else 0.4
        score += 0.25 * (0.1 if employees < 20 else size)
        score += 0.15 * (1.0 if industry in {"software", "fintech", "ecommerce"} else 0.5)
        if person.hand_raised:
            score += 0.12
        if person.cold:
            score -= 0.15
        return min(1.0, max(0.0, score + self.rng.gauss(0.0, 0.12)))

    def sales_plan(self, person: Person) -> tuple[SalesStep, ...]:
        """What sales will do once this person is an MQL; empty = never touched."""
        rng = self.rng

        def hours(lo: float, hi: float) -> float:
            return round(rng.uniform(lo, hi), 2)

        r = rng.random()
        if r < 0.04:
            return ()
        if r < 0.40:
            touch = rng.uniform(1, 15) / 60  # inside a 15-minute SLA
        elif r < 0.70:
            touch = rng.uniform(15, 120) / 60  # inside a 2-hour SLA
        elif r < 0.93:
            touch = rng.uniform(2, 48)
        else:
            touch = rng.uniform(48, 120)  # slow
        steps = [SalesStep("touch", round(touch, 3))]
        q = self.quality(person)
        verdict = VERDICTS.get(person.archetype)
        if verdict is not None and rng.random() < 0.9:
            steps.append(SalesStep(verdict[0], hours(0.2, 24), verdict[1]))
            return tuple(steps)
        if rng.random() >= 0.35 + 0.6 * q:
            r = rng.random()
            if r < 0.55:
                reason = rng.choice(("not_a_fit", "no_budget", "not_ready"))
                steps.append(SalesStep("reject", hours(0.2, 48), reason))
            elif r < 0.85:
                steps.append(SalesStep("recycle", hours(1, 96), rng.choice(REASONS["recycle"])))
            else:
                reason = rng.choice(("duplicate", "bad_data"))
                steps.append(SalesStep("disqualify", hours(0.2, 24), reason))
            return tuple(steps)
        steps.append(SalesStep("accept", hours(0.5, 72)))
        if rng.random() >= 0.1 + 0.45 * q:
            r = rng.random()
            if r < 0.5:
                steps.append(SalesStep("recycle", hours(72, 720), rng.choice(REASONS["recycle"])))
            elif r < 0.8:
                reason = rng.choice(("not_ready", "no_budget"))
                steps.append(SalesStep("reject", hours(24, 480), reason))
            return tuple(steps)  # else: accepted, still being worked
        company = person.traits.get("company")
        employees = int(company.get("employees", 100)) if isinstance(company, dict) else 100
        scale = 1.0 + 0.5 * min(2.0, max(0.0, math.log10(max(10, employees)) - 1.0))
        pipeline = rng.lognormvariate(math.log(18_000), 0.6) * scale
        amount = round(min(150_000.0, max(5_000.0, pipeline)), -2)
        steps.append(SalesStep("convert", hours(72, 720), amount=amount))
        if rng.random() < 0.06 + 0.24 * q:
            revenue = round(amount * rng.uniform(0.75, 1.1), -2)
            steps.append(SalesStep("won", hours(480, 2880), amount=revenue))
        elif rng.random() < 0.85:
            steps.append(SalesStep("lost", hours(240, 2880), rng.choice(REASONS["lost"])))
        return tuple(steps)

    # ----------------------------------------------------------------- spend

    def spend(self) -> list[dict[str, Any]]:
        """Monthly spend per campaign, prorated to the part of the month inside the window."""
        rng = self.rng
        start = _EPOCH + timedelta(milliseconds=self.start_ms)
        end = _EPOCH + timedelta(milliseconds=self.now_ms)
        day0 = self.day0_ms // DAY_MS
        rows: list[dict[str, Any]] = []
        year, month = start.year, start.month
        while (year, month) <= (end.year, end.month):
            first = datetime(year, month, 1, tzinfo=UTC)
            following = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
            covered = (min(following, end) - max(first, start)) / (following - first)
            lo_day = (max(first, start) - _EPOCH) // timedelta(days=1) - day0
            hi_day = (min(following, end) - _EPOCH) // timedelta(days=1) - day0
            for campaign in CAMPAIGNS:
                factor = 1.0
                if campaign.flights:
                    centres = [self.flight_day(f) for f in campaign.flights]
                    in_flight = any(lo_day - 7 <= c <= hi_day + 21 for c in centres)
                    factor = 1.6 if in_flight else 0.15
                amount = campaign.monthly_spend * factor * covered * rng.uniform(0.85, 1.15)
                rows.append(
                    {
                        "channel": campaign.channel,
                        "campaign": campaign.name,
                        "month": f"{year:04d}-{month:02d}",
                        "amount": round(amount, 2),
                        "currency": "USD",
                    }
                )
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return rows

    # ----------------------------------------------------------------- assembly

    def run(self, persons: int) -> DemoDataset:
        rng = self.rng
        names = list(ARCHETYPES)
        shares = [ARCHETYPES[name][0] for name in names]
        people: list[Person] = []
        for _ in range(persons):
            archetype = rng.choices(names, shares)[0]
            person = self.people.make_person(archetype, ARCHETYPES[archetype][1])
            self.journey(person)
            if archetype not in ACCOUNT_EXCLUDED and "company" in person.traits:
                self.people.business_people.append(person)
            people.append(person)
        plans = {p.user_id: self.sales_plan(p) for p in people if p.identified}
        return DemoDataset(None, plans, self.spend(), CHANNELS, spool=self.out)


def generate(*, now: datetime, seed: int = 7, persons: int = 5000, days: int = 180) -> DemoDataset:
    """Generate the marketing history of `persons` people over the `days` before `now`.

    Deterministic: the same arguments give the same dataset, message ids included.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    if persons < 0:
        raise ValueError("persons must be >= 0")
    if days < 1:
        raise ValueError("days must be >= 1")
    now_ms = (now.astimezone(UTC) - _EPOCH) // timedelta(milliseconds=1)
    return _Simulation(random.Random(seed), now_ms, days).run(persons)

"""The demo's people: who each visitor is, consistent with its archetype.

Apart from the simulation of what they do (:mod:`mqlengine.demo.generator`), which draws
from the same seeded RNG, in the same order, so the dataset stays the same for a seed.
"""

from __future__ import annotations

import itertools
import math
import random
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mqlengine.demo.tables import (
    CHANNEL_MIX,
    CHANNELS,
    COMPETITORS,
    COUNTRIES,
    DISPOSABLE,
    FREE_MAIL,
    HOUR_MS,
    INDUSTRIES,
    JUNK_NAMES,
    NAME_DESIGNATIONS,
    NAME_HEADS,
    NAME_TAILS,
    NAMES_BY_COUNTRY,
    NAMES_EN,
    ROLE_LOCALS,
    SERVED,
    TARGET_INDUSTRIES,
    TITLE_MIX,
    TITLES,
    UNIVERSITIES,
    UNSERVED,
    Behaviour,
    Campaign,
    Title,
)


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in folded.lower() if ch.isalnum())


@dataclass
class Company:
    index: int
    name: str
    domain: str
    employees: int
    industry: str
    country: str
    capacity: int
    pool: str
    members: int = 1
    group_pending: bool = False


@dataclass
class Person:
    archetype: str
    behaviour: Behaviour
    user_id: str
    anonymous_id: str
    imported: bool  # first known through a server-side import (badge scan, partner list)
    known_first: bool
    country: str
    tz_ms: int
    channel: str
    campaign: Campaign
    traits: dict[str, Any]
    cold: bool
    group: dict[str, Any] | None = None
    identified: bool = False
    hand_raised: bool = False


class Population:
    """Who the visitors are, drawn from the simulation's RNG: names, e-mails, titles,
    companies and countries consistent with each archetype. Keeps user ids, e-mails and
    company domains unique, and the open buying committees later colleagues join."""

    def __init__(self, rng: random.Random, by_channel: dict[str, list[Campaign]]) -> None:
        self.rng = rng
        self.by_channel = by_channel  # the campaigns of each channel
        self.companies: list[Company] = []
        self.open_companies: dict[str, list[Company]] = {}
        self.domains: set[str] = set()
        self.emails: set[str] = set()
        self.user_ids: set[str] = set()
        self.business_people: list[Person] = []  # people of a real company (for duplicates)

    def pick(self, weighted: Sequence[tuple[str, float]]) -> str:
        return self.rng.choices([k for k, _ in weighted], [w for _, w in weighted])[0]

    def new_user_id(self) -> str:
        while True:
            user_id = f"usr_{self.rng.getrandbits(48):012x}"
            if user_id not in self.user_ids:
                self.user_ids.add(user_id)
                return user_id

    def new_anonymous_id(self) -> str:
        h = f"{self.rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"

    def unique_email(self, local: str, domain: str) -> str:
        email = f"{local}@{domain}"
        n = 1
        while email in self.emails:
            n += 1
            email = f"{local}{n}@{domain}"
        self.emails.add(email)
        return email

    def company(self, pool_name: str, country: str) -> Company:
        """Join an open buying committee or found a new company (most are singletons)."""
        rng = self.rng
        pool = self.open_companies.setdefault(pool_name, [])
        if pool and rng.random() < 0.55:
            company = rng.choice(pool)
            company.members += 1
            if company.members >= company.capacity:
                pool.remove(company)
            return company
        if pool_name == "ideal":
            employees = int(math.exp(rng.uniform(math.log(200), math.log(5000))))
            industry = self.pick(TARGET_INDUSTRIES)
        else:
            band = rng.random()
            low, high = (
                (1, 19)
                if band < 0.3
                else (20, 199)
                if band < 0.6
                else (200, 5000)
                if band < 0.85
                else (5001, 100_000)
            )
            employees = int(math.exp(rng.uniform(math.log(low), math.log(high))))
            industry = self.pick(INDUSTRIES)
        for attempt in itertools.count():
            base = rng.choice(NAME_HEADS) + rng.choice(NAME_TAILS)
            tld = rng.choice(COUNTRIES[country].tlds)
            slug = _ascii(base) + (str(attempt) if attempt > 5 else "")
            domain = slug + tld
            if domain not in self.domains:
                break
        self.domains.add(domain)
        capacity = (
            rng.randint(3, 10) if rng.random() < (0.35 if pool_name == "ideal" else 0.2) else 1
        )
        company = Company(
            len(self.companies),
            base + rng.choice(NAME_DESIGNATIONS),
            domain,
            employees,
            industry,
            country,
            capacity,
            pool_name,
            group_pending=rng.random() < 0.4,
        )
        self.companies.append(company)
        if capacity > 1:
            pool.append(company)
        return company

    def title(self, mix: str) -> Title:
        return self.rng.choice(TITLES[self.pick(TITLE_MIX[mix])])

    def names(self, country: str) -> tuple[str, str]:
        firsts, lasts = NAMES_BY_COUNTRY.get(country, NAMES_EN)
        return self.rng.choice(firsts), self.rng.choice(lasts)

    def phone(self, country: str) -> str:
        rng = self.rng
        digits = "".join(str(rng.randrange(10)) for _ in range(10))
        prefix = COUNTRIES[country].phone_prefix
        if prefix == "+1":
            style = rng.random()
            if style < 0.4:
                return f"+1 ({digits[:3]}) 555-{digits[3:7]}"
            if style < 0.7:
                return f"{digits[:3]}-555-{digits[3:7]}"
            return f"+1{digits[:3]}555{digits[3:7]}"
        return f"{prefix} {digits[:3]} {digits[3:6]} {digits[6:]}"

    def make_person(self, archetype: str, behaviour: Behaviour) -> Person:
        rng = self.rng
        family = "ideal_buyer" if archetype == "unserved" else archetype
        channel = rng.choices(CHANNELS, CHANNEL_MIX.get(family, CHANNEL_MIX["default"]))[0]
        campaigns = self.by_channel[channel]
        campaign = rng.choices(campaigns, [c.weight for c in campaigns])[0]
        cold = archetype != "spam" and rng.random() < 0.15
        traits, country, group = self.traits(archetype, behaviour, channel)
        known_first = rng.random() < behaviour.known_first
        imported = known_first and channel in {"events", "partner"} and rng.random() < 0.6
        return Person(
            archetype=archetype,
            behaviour=behaviour,
            user_id=self.new_user_id(),
            anonymous_id=self.new_anonymous_id(),
            imported=imported,
            known_first=known_first,
            country=country,
            tz_ms=int(rng.choice(COUNTRIES[country].utc_offsets) * HOUR_MS),
            channel=channel,
            campaign=campaign,
            traits=traits,
            cold=cold,
            group=group,
        )

    def duplicate_traits(self, channel: str) -> tuple[dict[str, Any], str, None]:
        """The same human as an earlier lead, signing up again with another address."""
        rng = self.rng
        original = rng.choice(self.business_people)
        traits = dict(original.traits)
        if isinstance(traits.get("company"), dict):
            traits["company"] = dict(traits["company"])
        first = str(traits.get("first_name", "Alex"))
        last = str(traits.get("last_name", "Kim"))
        domain = str(traits["email"]).split("@", 1)[1]
        local = f"{_ascii(first)[:1]}{_ascii(last)}" if rng.random() < 0.5 else _ascii(first)
        traits["email"] = self.unique_email(local, domain)
        traits["lead_source"] = channel
        return traits, original.country, None

    def traits(
        self, archetype: str, behaviour: Behaviour, channel: str
    ) -> tuple[dict[str, Any], str, dict[str, Any] | None]:
        """Identify traits (and an optional group call) consistent with the archetype."""
        rng = self.rng
        if archetype == "duplicate" and self.business_people:
            return self.duplicate_traits(channel)
        company: dict[str, Any] | None = None
        group: dict[str, Any] | None = None
        local: str | None = None
        title: Title | None = None
        country = self.pick(UNSERVED) if archetype == "unserved" else self.pick(SERVED)
        first, last = self.names(country)
        if archetype == "student":
            university, domain, country = rng.choice(UNIVERSITIES)
            first, last = self.names(country)
            employees = rng.randint(3000, 20000)
            company = {"name": university, "employees": employees, "industry": "education"}
            title = rng.choice(TITLES["student"])
            if rng.random() < 0.4:
                local = f"{_ascii(first)[:1]}{_ascii(last)[:6]}{rng.randint(10, 99)}"
        elif archetype == "competitor":
            name, domain, employees, industry, country = rng.choice(COMPETITORS)
            first, last = self.names(country)
            company = {"name": name, "employees": employees, "industry": industry}
            title = rng.choice(TITLES["competitor"])
        elif archetype == "spam":
            domain = rng.choice(DISPOSABLE) if rng.random() < 0.8 else self.pick(FREE_MAIL)
            if rng.random() < 0.3:
                country = self.pick(UNSERVED)
            junk = rng.choice(JUNK_NAMES)
            if rng.random() < 0.5:
                first = last = junk
            else:
                first = "".join(
                    rng.choice("bcdfghjklmnpqrstvwxz") for _ in range(rng.randint(5, 9))
                )
                last = rng.choice((junk, first[::-1], "Doe"))
            local = rng.choice((junk, first)) + str(rng.randint(1, 9999))
            title = rng.choice(
                ((junk, None, None), ("CEO", "c_level", "executive"), ("x", None, None))
            )
            company = {
                "name": rng.choice((junk, "N/A", "test", first)),
                "employees": rng.choice((1, 5, 100_000, 999_999)),
                "industry": rng.choice(("software", "other", junk)),
            }
        elif archetype == "free_mail":
            domain = self.pick(FREE_MAIL)
            title = self.title("free_mail")
            if rng.random() < 0.6:
                company = {
                    "name": rng.choice(NAME_HEADS) + " Consulting",
                    "employees": rng.randint(1, 30),
                    "industry": self.pick(INDUSTRIES),
                }
            if rng.random() < 0.5:
                local = f"{_ascii(first)}{_ascii(last)}{rng.randint(1, 99)}"
        else:
            if archetype == "unserved":
                pool_name = "unserved"
            elif archetype == "ideal_buyer" or (archetype == "evaluator" and rng.random() < 0.4):
                pool_name = "ideal"
            else:
                pool_name = "general"
            firm = self.company(pool_name, country)
            if archetype == "unserved" or rng.random() < 0.9:
                country = firm.country
            domain = firm.domain
            company = {"name": firm.name, "employees": firm.employees, "industry": firm.industry}
            if archetype == "job_seeker" and rng.random() < 0.6:
                domain = self.pick(FREE_MAIL)
            if archetype == "role_account":
                local = rng.choice(ROLE_LOCALS)
            else:
                title = self.title(behaviour.titles)
            if archetype == "bad_data":  # a typo in the domain: mail to it bounces
                domain = domain.replace(".", "", 1) if rng.random() < 0.5 else domain + "m"
            if firm.group_pending:
                firm.group_pending = False
                group = {
                    "groupId": f"acc_{firm.index:05d}",
                    "traits": {
                        "name": firm.name,
                        "industry": firm.industry,
                        "employees": firm.employees,
                        "website": f"https://www.{firm.domain}",
                    },
                }
        if local is None:
            a, b = _ascii(first), _ascii(last)
            formats = (f"{a}.{b}", f"{a[:1]}{b}", a, f"{a}{b[:1]}", f"{a}_{b}", f"{b}.{a}")
            local = rng.choices(formats, (45, 20, 15, 10, 5, 5))[0]
        traits: dict[str, Any] = {"email": self.unique_email(local, domain)}
        if archetype != "role_account":
            traits["first_name"] = first.capitalize() if archetype == "spam" else first
            traits["last_name"] = last
        if title is not None and (archetype == "spam" or rng.random() < 0.93):
            traits["title"] = title[0]
            if title[1] is not None:
                traits["seniority"] = title[1]
                traits["department"] = title[2]
        if company is not None:
            traits["company"] = company
        traits["country"] = country
        if rng.random() < (0.9 if archetype == "spam" else 0.35):
            traits["phone"] = "1234567890" if archetype == "spam" else self.phone(country)
        traits["consent_marketing"] = archetype != "no_consent" and rng.random() > 0.01
        traits["lead_source"] = channel
        return traits, country, group

"""Deterministic synthetic B2B marketing history for `mql demo` and the benchmarks.

Why synthetic: the demo and the benchmarks need a history that exercises every rule of the
example definition (fit traits, decayed intent, exclusions, MQL paths) and the sales feedback
loop, without shipping anyone's real data. Everything is drawn from one seeded
`random.Random` and `now` is a parameter, so the same arguments always give the same dataset.

Messages follow the Segment spec (identify / track / page / group). Page views stay
`type: page`; the engine treats them as the definition's `Page Viewed` event.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

__all__ = ["CHANNELS", "DemoDataset", "SalesStep", "generate"]


@dataclass(frozen=True)
class SalesStep:
    """One thing sales does to an MQL; replayed by the demo to close the feedback loop."""

    action: str  # touch, accept, reject, recycle, disqualify, convert, won, lost
    after_hours: float  # delay after the previous step (first step: after becoming an MQL)
    reason: str | None = None  # required for reject/recycle/disqualify/lost
    amount: float | None = None  # convert: pipeline amount; won: revenue


@dataclass(frozen=True)
class DemoDataset:
    messages: list[dict[str, Any]]  # Segment-spec messages, sorted by timestamp
    sales_plans: dict[str, tuple[SalesStep, ...]]  # keyed by userId
    spend: list[dict[str, Any]]  # {channel, campaign, month: "YYYY-MM", amount, currency}
    channels: tuple[str, ...]


CHANNELS: Final = (
    "organic_search",
    "paid_search",
    "paid_social",
    "email",
    "events",
    "referral",
    "partner",
    "direct",
)

# Reason codes, as in the example definition's `reasons:`.
REASONS: Final[dict[str, tuple[str, ...]]] = {
    "reject": ("not_a_fit", "no_budget", "bad_data", "competitor", "student", "not_ready"),
    "recycle": ("not_now", "no_response", "timing"),
    "disqualify": ("spam", "duplicate", "out_of_territory", "bad_data"),
    "lost": ("price", "competitor", "no_decision", "timing"),
}

_DAY: Final = 86_400_000
_HOUR: Final = 3_600_000
_MINUTE: Final = 60_000
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_SITE: Final = "https://www.lumen-analytics.example"

# --------------------------------------------------------------------------- campaigns


@dataclass(frozen=True)
class _Campaign:
    name: str
    channel: str
    source: str
    medium: str
    monthly_spend: float
    landing: str  # "*blog" = a random blog post
    flights: tuple[float, ...]  # burst centres as fractions of the window
    weight: float  # share of the channel's acquisitions


# fmt: off
_CAMPAIGNS: Final = (
    # name, channel, utm source, utm medium, monthly spend (USD), landing, flights, weight
    _Campaign("seo-blog-content", "organic_search", "google", "organic", 4500, "*blog", (), 3),
    _Campaign("seo-comparison-pages", "organic_search", "google", "organic", 2500,
              "/compare/rivalytics-alternative", (), 1),
    _Campaign("seo-glossary", "organic_search", "bing", "organic", 1200, "*blog", (), 1),
    _Campaign("brand-search-us", "paid_search", "google", "cpc", 18000, "/", (), 3),
    _Campaign("competitor-terms", "paid_search", "google", "cpc", 22000,
              "/compare/rivalytics-alternative", (), 1.5),
    _Campaign("generic-analytics-emea", "paid_search", "google", "cpc", 26000, "/product", (), 2),
    _Campaign("bing-brand", "paid_search", "bing", "cpc", 3500, "/", (), 0.5),
    _Campaign("linkedin-abm-enterprise", "paid_social", "linkedin", "paid_social", 24000,
              "/pricing/enterprise", (), 2),
    _Campaign("linkedin-thought-leadership", "paid_social", "linkedin", "paid_social", 15000,
              "*blog", (0.3,), 2),
    _Campaign("facebook-retargeting", "paid_social", "facebook", "paid_social", 6000,
              "/pricing", (), 1),
    _Campaign("weekly-newsletter", "email", "newsletter", "email", 1500, "*blog", (), 3),
    _Campaign("product-launch-announcement", "email", "marketo", "email", 2500,
              "/product/dashboards", (0.55,), 1),
    _Campaign("nurture-mid-funnel", "email", "marketo", "email", 1200, "/customers", (), 1),
    _Campaign("q3-analytics-webinar", "events", "webinar", "event", 6000,
              "/webinars/q3-analytics", (0.4,), 2),
    _Campaign("q4-revops-webinar", "events", "webinar", "event", 5000,
              "/webinars/revops-playbook", (0.78,), 1.5),
    _Campaign("saas-connect-conference", "events", "conference", "event", 35000, "/", (0.62,), 1.5),
    _Campaign("london-roadshow", "events", "roadshow", "event", 12000, "/customers", (0.2,), 1),
    _Campaign("customer-referral-program", "referral", "customer", "referral", 3000, "/", (), 1),
    _Campaign("g2-reviews", "referral", "g2", "referral", 2500,
              "/compare/rivalytics-alternative", (), 2),
    _Campaign("capterra-listing", "referral", "capterra", "referral", 1500, "/pricing", (), 1),
    _Campaign("hubspot-marketplace", "partner", "hubspot", "partner", 2000,
              "/product/integrations", (), 2),
    _Campaign("salesforce-appexchange", "partner", "salesforce", "partner", 3500,
              "/product/integrations", (), 1.5),
    _Campaign("agency-partners", "partner", "agency", "partner", 4000, "/", (0.5,), 1),
    _Campaign("brand-podcast-sponsorship", "direct", "podcast", "audio", 3000, "/", (), 1),
    _Campaign("direct", "direct", "(direct)", "(none)", 0, "/", (), 4),
)
# fmt: on

# --------------------------------------------------------------------------- website

_BLOG: Final = tuple(
    "/blog/" + slug
    for slug in (
        "mql-vs-sql",
        "lead-scoring-101",
        "intent-data-explained",
        "revops-metrics-that-matter",
        "b2b-attribution-models",
        "demand-gen-benchmarks-2026",
        "how-to-build-an-icp",
        "account-based-marketing-guide",
        "marketing-ops-stack",
        "predictive-lead-scoring",
        "sales-marketing-sla",
        "funnel-conversion-rates",
        "utm-tracking-best-practices",
        "cohort-analysis-for-marketers",
        "pipeline-forecasting",
        "data-warehouse-for-marketing",
        "gdpr-consent-marketing",
        "webinar-promotion-playbook",
        "content-syndication-roi",
        "product-led-growth-signals",
    )
)
_PAGE_GROUPS: Final[dict[str, tuple[str, ...]]] = {
    "home": ("/",),
    "pricing": ("/pricing", "/pricing", "/pricing", "/pricing/enterprise"),
    "product": (
        "/product",
        "/product/dashboards",
        "/product/attribution",
        "/product/lead-scoring",
        "/product/integrations",
        "/product/security",
    ),
    "customers": ("/customers", "/customers/northwind", "/customers/globex", "/customers/initech"),
    "blog": ("/blog", *_BLOG),
    "careers": (
        "/careers",
        "/careers",
        "/careers/senior-backend-engineer",
        "/careers/account-executive",
        "/careers/product-designer",
        "/careers/marketing-manager",
    ),
    "docs": (
        "/docs",
        "/docs/getting-started",
        "/docs/api",
        "/docs/integrations/segment",
        "/docs/sql-reference",
    ),
    "resources": (
        "/resources",
        "/resources/state-of-b2b-analytics-2026",
        "/resources/revops-playbook",
        "/resources/roi-calculator",
    ),
    "misc": ("/about", "/contact", "/security", "/compare/rivalytics-alternative", "/webinars"),
}
_GROUP_ORDER: Final = tuple(_PAGE_GROUPS)
# Interest profiles: weight of each page group (order as _GROUP_ORDER).
_INTERESTS: Final[dict[str, tuple[float, ...]]] = {
    "ideal": (1, 4, 4, 2, 1.5, 0.05, 1, 1, 0.6),
    "evaluator": (1, 2, 3, 1.5, 3, 0.1, 1.5, 1.5, 0.5),
    "power": (1, 1.5, 2, 0.5, 1, 0.05, 5, 0.5, 0.3),
    "browser": (1, 0.3, 0.8, 0.3, 8, 0.2, 0.3, 1.5, 0.3),
    "student": (1, 0.3, 1, 0.2, 5, 0.8, 3, 1.5, 0.3),
    "competitor": (1, 5, 5, 3, 1, 0.5, 2, 1.5, 1),
    "job_seeker": (1, 0.2, 0.8, 0.5, 1.5, 6, 0.2, 0.2, 1.5),
}
_SECTION_NAMES: Final = {
    "": "Home",
    "pricing": "Pricing",
    "product": "Product",
    "customers": "Customers",
    "blog": "Blog",
    "careers": "Careers",
    "docs": "Docs",
    "resources": "Resources",
    "webinars": "Webinars",
    "compare": "Compare",
    "about": "About",
    "contact": "Contact",
    "security": "Security",
    "demo": "Demo",
    "signup": "Sign Up",
}
_ASSETS: Final = (
    ("State of B2B Analytics 2026", "report"),
    ("RevOps Playbook", "ebook"),
    ("Lead Scoring Template", "template"),
    ("Attribution Buyer's Guide", "ebook"),
    ("ROI Calculator", "tool"),
    ("Demand Gen Benchmarks", "report"),
)
_USER_AGENTS: Final = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.51",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4_1) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4.1 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/123.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Mobile Safari/537.36",
)
_BOT_USER_AGENT: Final = "python-requests/2.31.0"

# --------------------------------------------------------------------------- people


@dataclass(frozen=True)
class _Country:
    weight: float  # share of people, within the served or the unserved group
    served: bool
    utc_offsets: tuple[float, ...]  # standard time (DST ignored)
    locale: str
    phone_prefix: str
    tlds: tuple[str, ...]


_GENERIC_TLDS: Final = (".com", ".com", ".io", ".ai", ".co")
# fmt: off
_COUNTRIES: Final[dict[str, _Country]] = {
    "US": _Country(45, True, (-5, -5, -6, -8, -7), "en-US", "+1", _GENERIC_TLDS),
    "GB": _Country(12, True, (0,), "en-GB", "+44", (".co.uk", ".com", ".io")),
    "DE": _Country(8, True, (1,), "de-DE", "+49", (".de", ".com", ".io")),
    "FR": _Country(6, True, (1,), "fr-FR", "+33", (".fr", ".com")),
    "CA": _Country(6, True, (-5, -8), "en-CA", "+1", (".ca", ".com")),
    "NL": _Country(4, True, (1,), "nl-NL", "+31", (".nl", ".com")),
    "AU": _Country(3, True, (10, 8), "en-AU", "+61", (".com.au", ".com")),
    "IE": _Country(1.5, True, (0,), "en-IE", "+353", (".ie", ".com")),
    "ES": _Country(1.5, True, (1,), "es-ES", "+34", (".es", ".com")),
    "IT": _Country(1.5, True, (1,), "it-IT", "+39", (".it", ".com")),
    "BR": _Country(3, False, (-3,), "pt-BR", "+55", (".com.br", ".com")),
    "IN": _Country(4, False, (5.5,), "en-IN", "+91", (".in", ".com", ".io")),
    "CN": _Country(2, False, (8,), "zh-CN", "+86", (".cn", ".com")),
    "RU": _Country(1.5, False, (3,), "ru-RU", "+7", (".ru", ".com")),
    "MX": _Country(1, False, (-6,), "es-MX", "+52", (".com.mx", ".com")),
    "ZA": _Country(1, False, (2,), "en-ZA", "+27", (".co.za", ".com")),
    "NG": _Country(0.7, False, (1,), "en-NG", "+234", (".ng", ".com")),
    "PK": _Country(0.6, False, (5,), "en-PK", "+92", (".pk", ".com")),
}
# fmt: on
_SERVED: Final = tuple((k, c.weight) for k, c in _COUNTRIES.items() if c.served)
_UNSERVED: Final = tuple((k, c.weight) for k, c in _COUNTRIES.items() if not c.served)

_NAMES_EN: Final = (
    (
        "James", "Olivia", "Liam", "Emma", "Noah", "Ava", "Ethan", "Sophia", "Mason", "Mia",
        "Lucas", "Harper", "Daniel", "Chloe", "Ryan", "Grace", "Aiden", "Zoe", "Nathan", "Ella",
        "Priya", "Marcus", "Hannah", "Kevin", "Rachel", "Tyler", "Megan", "Jordan", "Aisha",
    ),
    (
        "Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson", "Taylor",
        "Anderson", "Thomas", "Moore", "Martin", "Lee", "Walker", "Hall", "Young", "King",
        "Wright", "Scott", "Green", "Baker", "Adams", "Nelson", "Carter", "Patel", "O'Brien",
    ),
)  # fmt: skip
_NAMES_BY_COUNTRY: Final[dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "DE": (
        ("Lukas", "Anna", "Jonas", "Lena", "Felix", "Marie", "Maximilian", "Sophie", "Paul",
         "Jürgen", "Katrin", "Tobias", "Julia", "Niklas"),
        ("Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker",
         "Schulz", "Hoffmann", "Koch", "Richter", "Klein", "Wolf"),
    ),
    "FR": (
        ("Louis", "Camille", "Hugo", "Léa", "Jules", "Chloé", "Gabriel", "Manon", "Arthur",
         "Inès", "François", "Élodie", "Mathieu", "Claire"),
        ("Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand",
         "Leroy", "Moreau", "Simon", "Laurent", "Lefèvre", "Girard"),
    ),
    "NL": (
        ("Daan", "Emma", "Sem", "Julia", "Lucas", "Sanne", "Bram", "Lotte", "Thijs", "Fleur"),
        ("de Jong", "Jansen", "de Vries", "van den Berg", "Bakker", "Visser", "Smit", "Meijer",
         "de Boer", "Mulder"),
    ),
    "ES": (
        ("Alejandro", "Lucía", "Pablo", "María", "Javier", "Carmen", "Diego", "Elena"),
        ("García", "Fernández", "González", "Rodríguez", "López", "Martínez", "Sánchez", "Pérez"),
    ),
    "IT": (
        ("Marco", "Giulia", "Luca", "Chiara", "Matteo", "Francesca", "Alessandro", "Sara"),
        ("Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci"),
    ),
    "BR": (
        ("João", "Ana", "Pedro", "Mariana", "Lucas", "Beatriz", "Gabriel", "Larissa"),
        ("Silva", "Santos", "Oliveira", "Souza", "Lima", "Pereira", "Costa", "Almeida"),
    ),
    "MX": (
        ("José", "Guadalupe", "Luis", "Fernanda", "Carlos", "Daniela", "Miguel", "Sofía"),
        ("Hernández", "García", "Martínez", "López", "González", "Ramírez", "Flores", "Cruz"),
    ),
    "IN": (
        ("Aarav", "Priya", "Rahul", "Ananya", "Vikram", "Sneha", "Arjun", "Kavya", "Rohan",
         "Divya"),
        ("Sharma", "Patel", "Gupta", "Singh", "Kumar", "Reddy", "Iyer", "Nair", "Mehta", "Rao"),
    ),
    "CN": (
        ("Wei", "Fang", "Jing", "Lei", "Min", "Yan", "Hao", "Xin"),
        ("Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao"),
    ),
    "RU": (
        ("Alexei", "Olga", "Dmitri", "Natalia", "Sergei", "Irina", "Ivan", "Ekaterina"),
        ("Ivanov", "Smirnova", "Kuznetsov", "Popova", "Sokolov", "Volkova", "Morozov", "Petrova"),
    ),
}  # fmt: skip

# (title, seniority, department); seniority None = not derivable from the title.
_Title = tuple[str, str | None, str | None]
# fmt: off
_TITLES: Final[dict[str, tuple[_Title, ...]]] = {
    "senior_target": (
        ("VP Marketing", "vp", "marketing"), ("VP of Marketing", "vp", "marketing"),
        ("Vice President, Demand Generation", "vp", "marketing"), ("SVP Sales", "vp", "sales"),
        ("VP, Revenue Operations", "vp", "revenue_operations"),
        ("Sr. Director, Demand Gen", "director", "marketing"),
        ("Director of Marketing Operations", "director", "marketing"),
        ("Director, Sales Operations", "director", "sales"),
        ("Dir. Marketing Analytics", "director", "marketing"),
        ("Head of RevOps", "head", "revenue_operations"),
        ("Head of Growth Marketing", "head", "marketing"), ("Head of Sales", "head", "sales"),
        ("Global Head of Demand Generation", "head", "marketing"),
        ("CMO", "c_level", "marketing"), ("Chief Marketing Officer", "c_level", "marketing"),
        ("Chief Revenue Officer", "c_level", "sales"), ("CRO", "c_level", "sales"),
    ),
    "manager_target": (
        ("Marketing Manager", "manager", "marketing"),
        ("Sr. Marketing Ops Manager", "manager", "marketing"),
        ("Demand Generation Manager", "manager", "marketing"),
        ("Mgr, Marketing Operations", "manager", "marketing"),
        ("RevOps Manager", "manager", "revenue_operations"),
        ("Revenue Operations Manager", "manager", "revenue_operations"),
        ("Sales Manager", "manager", "sales"),
        ("Product Marketing Manager", "manager", "marketing"),
    ),
    "ic_target": (
        ("Marketing Specialist", "individual", "marketing"),
        ("Marketing Coordinator", "individual", "marketing"),
        ("Sr. Marketing Analyst", "senior", "marketing"),
        ("Senior Marketing Operations Specialist", "senior", "marketing"),
        ("SDR", "individual", "sales"), ("Account Executive", "individual", "sales"),
        ("Senior Account Executive", "senior", "sales"),
        ("Revenue Operations Analyst", "individual", "revenue_operations"),
        ("Growth Marketer", "individual", "marketing"),
    ),
    "executive": (
        ("CEO & Co-founder", "c_level", "executive"), ("CEO", "c_level", "executive"),
        ("Founder", "c_level", "executive"), ("Co-Founder & COO", "c_level", "executive"),
        ("Managing Director", "c_level", "executive"), ("President", "c_level", "executive"),
    ),
    "senior_other": (
        ("VP Engineering", "vp", "engineering"), ("CTO", "c_level", "engineering"),
        ("CFO", "c_level", "finance"), ("Director of Product", "director", "product"),
        ("Head of Data", "head", "data"), ("IT Director", "director", "it"),
        ("VP, People", "vp", "hr"), ("Director of Operations", "director", "operations"),
    ),
    "ic_other": (
        ("Software Engineer", "individual", "engineering"),
        ("Senior Software Engineer", "senior", "engineering"),
        ("Sr. Software Engineer", "senior", "engineering"),
        ("Staff Engineer", "senior", "engineering"), ("Data Analyst", "individual", "data"),
        ("Sr. Data Scientist", "senior", "data"), ("Analytics Engineer", "individual", "data"),
        ("Product Manager", "manager", "product"), ("Financial Analyst", "individual", "finance"),
        ("HR Manager", "manager", "hr"), ("Talent Acquisition Specialist", "individual", "hr"),
        ("Systems Administrator", "individual", "it"),
        ("Operations Manager", "manager", "operations"),
        ("Business Analyst", "individual", "operations"),
    ),
    "student": (
        ("Student", "student", "education"), ("Student", "student", "education"),
        ("MBA Candidate", "student", "education"), ("PhD Student", "student", "education"),
        ("Graduate Student", "student", "education"),
    ),
    "intern": (
        ("Intern", "intern", "marketing"), ("Marketing Intern", "intern", "marketing"),
        ("Software Engineering Intern", "intern", "engineering"),
        ("Sales Intern", "intern", "sales"),
    ),
    "competitor": (
        ("Product Manager", "manager", "product"),
        ("Competitive Intelligence Analyst", "individual", "marketing"),
        ("Product Marketing Manager", "manager", "marketing"),
        ("Sr. Software Engineer", "senior", "engineering"), ("Head of Growth", "head", "marketing"),
        ("Founder", "c_level", "executive"),
    ),
    "freelance": (
        ("Independent Consultant", "individual", "operations"),
        ("Freelance Marketing Consultant", "individual", "marketing"),
        ("Fractional CMO", "c_level", "marketing"), ("Owner", "c_level", "executive"),
    ),
}
# Title mix per archetype: (pool, weight).
_TITLE_MIX: Final[dict[str, tuple[tuple[str, float], ...]]] = {
    "ideal": (("senior_target", 70), ("executive", 12), ("manager_target", 18)),
    "evaluator": (("manager_target", 35), ("ic_target", 25), ("senior_other", 12),
                  ("ic_other", 23), ("executive", 5)),
    "power": (("ic_other", 40), ("manager_target", 30), ("ic_target", 30)),
    "browser": (("ic_target", 30), ("ic_other", 35), ("manager_target", 20), ("intern", 5),
                ("senior_target", 5), ("senior_other", 5)),
    "free_mail": (("freelance", 25), ("ic_target", 25), ("ic_other", 25), ("manager_target", 25)),
    "job_seeker": (("ic_other", 50), ("ic_target", 40), ("intern", 10)),
}
_INDUSTRIES: Final = (
    ("software", 5.0), ("fintech", 2.0), ("ecommerce", 2.0), ("healthcare", 1.5),
    ("manufacturing", 1.5), ("education", 0.7), ("retail", 1.2), ("media", 1.0),
    ("consulting", 1.3),
)
# fmt: on
_TARGET_INDUSTRIES: Final = (("software", 5.0), ("fintech", 2.5), ("ecommerce", 2.5))
_NAME_HEADS: Final = (
    "North", "Blue", "Bright", "Cobalt", "Summit", "Harbor", "Pioneer", "Silver", "Granite",
    "Maple", "Orbit", "Vertex", "Lumen", "Crimson", "Atlas", "Nimbus", "Quantum", "Cedar",
    "Falcon", "Evergreen", "Iron", "Polar", "Nova", "Beacon", "Helix", "Sable", "Tidal",
    "Copper", "Keystone", "Aurora", "Juniper", "Redwood", "Zenith", "Prairie", "Ember",
    "Meridian", "Osprey", "Willow", "Stellar", "Arbor", "Crest", "Delta", "Echo", "Fable",
    "Glacier", "Horizon", "Indigo", "Kestrel", "Lattice", "Mosaic",
)  # fmt: skip
_NAME_TAILS: Final = (
    "wind", "stack", "ly", "labs", "soft", "works", "data", "ware", "metrics", "logic", "point",
    "bridge", "flow", "scale", "path", "forge", "wave", "grid", "line", "field", "gate",
    "mark", "base", "loop", "sync", "cloud", "hub", "spark", "nest", "shift",
)  # fmt: skip
_NAME_DESIGNATIONS: Final = ("", "", "", " Inc.", " Labs", " Systems", " Group", " GmbH", " Ltd")
_FREE_MAIL: Final = (
    ("gmail.com", 55.0),
    ("yahoo.com", 15.0),
    ("hotmail.com", 12.0),
    ("outlook.com", 13.0),
)
_DISPOSABLE: Final = (
    "mailinator.com",
    "guerrillamail.com",
    "10minutemail.com",
    "yopmail.com",
    "trashmail.com",
)
_COMPETITORS: Final = (
    ("Rivalytics", "rivalytics.com", 350, "software", "US"),
    ("CompeteLabs", "competelabs.io", 120, "software", "GB"),
    ("MetricMonger", "metricmonger.com", 60, "software", "DE"),
)
_UNIVERSITIES: Final = (
    ("Stanford University", "stanford.edu", "US"),
    ("University of Michigan", "umich.edu", "US"),
    ("MIT", "mit.edu", "US"),
    ("UC Berkeley", "berkeley.edu", "US"),
    ("New York University", "nyu.edu", "US"),
    ("Arizona State University", "asu.edu", "US"),
    ("University of Oxford", "ox.ac.uk", "GB"),
    ("University College London", "ucl.ac.uk", "GB"),
    ("University of Manchester", "manchester.ac.uk", "GB"),
    ("University of Edinburgh", "ed.ac.uk", "GB"),
)
_ROLE_LOCALS: Final = ("info", "sales", "marketing", "contact", "hello", "admin", "office", "team")
_JUNK_NAMES: Final = ("asdf", "test", "qwerty", "aaa", "xxx", "sdfsdf", "fgh", "null")

# --------------------------------------------------------------------------- archetypes


@dataclass(frozen=True)
class _Behaviour:
    interest: str
    titles: str
    sessions: tuple[int, int]
    pages_per_session: float  # mean pages after the landing page
    gap_days: float  # mean days between sessions
    identify: float
    known_first: float
    demo: float
    trial: float
    activation: float
    downloads: tuple[int, int]
    webinar: float  # chance to register for each webinar
    open_rate: tuple[float, float]
    click_rate: float
    product_events: tuple[int, int]


def _b(
    interest: str,
    titles: str,
    sessions: tuple[int, int],
    pps: float,
    gap: float,
    identify: float,
    known_first: float,
    demo: float,
    trial: float,
    activation: float,
    downloads: tuple[int, int],
    webinar: float,
    open_rate: tuple[float, float],
    click_rate: float,
    product_events: tuple[int, int],
) -> _Behaviour:
    return _Behaviour(
        interest,
        titles,
        sessions,
        pps,
        gap,
        identify,
        known_first,
        demo,
        trial,
        activation,
        downloads,
        webinar,
        open_rate,
        click_rate,
        product_events,
    )


# name: (population share, behaviour). Columns of _b: interest, titles, sessions,
# pages/session, gap days, identify, known first, demo, trial, activation, downloads,
# webinar, open rate, click rate, product events.
# fmt: off
_ARCHETYPES: Final[dict[str, tuple[float, _Behaviour]]] = {
    "ideal_buyer": (0.11, _b("ideal", "ideal", (6, 25), 5.6, 4, 1.0, 0.25,
                             0.55, 0.35, 0.6, (0, 3), 0.3, (0.25, 0.6), 0.22, (2, 25))),
    "evaluator": (0.15, _b("evaluator", "evaluator", (4, 18), 4.5, 6, 0.92, 0.3,
                           0.1, 0.18, 0.45, (0, 3), 0.3, (0.15, 0.45), 0.18, (0, 12))),
    "power_user": (0.012, _b("power", "power", (18, 63), 5.6, 3, 1.0, 0.3,
                             0.3, 1.0, 1.0, (0, 2), 0.2, (0.3, 0.6), 0.2, (120, 380))),
    "browser": (0.21, _b("browser", "browser", (1, 11), 3.1, 12, 0.72, 0.3,
                         0.01, 0.03, 0.3, (0, 2), 0.12, (0.05, 0.35), 0.12, (0, 4))),
    "anonymous": (0.11, _b("browser", "browser", (1, 7), 2.5, 15, 0.0, 0.0,
                           0.0, 0.0, 0.0, (0, 0), 0.0, (0.0, 0.0), 0.0, (0, 0))),
    "free_mail": (0.07, _b("evaluator", "free_mail", (2, 13), 3.9, 8, 1.0, 0.35,
                           0.12, 0.2, 0.4, (0, 2), 0.15, (0.1, 0.4), 0.15, (0, 10))),
    "student": (0.05, _b("student", "student", (1, 11), 3.9, 7, 0.9, 0.3,
                         0.06, 0.35, 0.35, (0, 3), 0.2, (0.1, 0.4), 0.15, (0, 15))),
    "competitor": (0.02, _b("competitor", "competitor", (4, 17), 5.6, 5, 1.0, 0.2,
                            0.08, 0.5, 0.6, (1, 4), 0.4, (0.3, 0.7), 0.25, (3, 30))),
    "spam": (0.035, _b("browser", "browser", (1, 1), 0.0, 1, 1.0, 1.0,
                       0.35, 0.1, 0.0, (0, 2), 0.0, (0.0, 0.02), 0.0, (0, 0))),
    "role_account": (0.02, _b("evaluator", "evaluator", (1, 8), 3.5, 8, 1.0, 0.5,
                              0.2, 0.05, 0.3, (0, 2), 0.1, (0.05, 0.3), 0.1, (0, 5))),
    "unsubscriber": (0.045, _b("browser", "browser", (2, 11), 3.5, 8, 1.0, 0.3,
                               0.03, 0.05, 0.3, (0, 2), 0.1, (0.3, 0.55), 0.1, (0, 3))),
    "job_seeker": (0.04, _b("job_seeker", "job_seeker", (1, 8), 4.3, 6, 0.55, 0.2,
                            0.01, 0.02, 0.2, (0, 1), 0.05, (0.1, 0.3), 0.1, (0, 2))),
    "unserved": (0.045, _b("ideal", "ideal", (4, 17), 4.3, 5, 1.0, 0.3,
                           0.3, 0.3, 0.5, (0, 3), 0.25, (0.15, 0.5), 0.2, (0, 15))),
    "no_consent": (0.03, _b("evaluator", "evaluator", (4, 14), 4.3, 6, 1.0, 0.3,
                            0.2, 0.2, 0.4, (0, 3), 0.2, (0.0, 0.0), 0.0, (0, 10))),
    "bad_data": (0.015, _b("evaluator", "evaluator", (2, 11), 3.5, 7, 1.0, 0.4,
                           0.1, 0.1, 0.3, (0, 2), 0.1, (0.1, 0.3), 0.1, (0, 5))),
    "duplicate": (0.01, _b("evaluator", "evaluator", (1, 7), 3.5, 6, 1.0, 0.6,
                           0.15, 0.05, 0.3, (0, 1), 0.1, (0.1, 0.4), 0.1, (0, 3))),
}
# fmt: on

# Channel mix of acquisition per archetype family (order as CHANNELS).
_CHANNEL_MIX: Final[dict[str, tuple[float, ...]]] = {
    "default": (26, 16, 12, 4, 8, 6, 6, 22),
    "ideal_buyer": (14, 18, 20, 4, 14, 8, 8, 14),
    "browser": (45, 8, 14, 4, 3, 4, 2, 20),
    "student": (55, 6, 8, 2, 4, 3, 1, 21),
    "spam": (10, 25, 30, 0, 0, 5, 0, 30),
    "job_seeker": (40, 5, 10, 0, 2, 5, 0, 38),
}
_WEEKDAY_FACTOR: Final = (1.0, 1.1, 1.1, 1.0, 0.8, 0.3, 0.25)
_HOUR_WEIGHTS: Final = (
    0.2, 0.1, 0.05, 0.05, 0.05, 0.1, 0.3, 0.8, 1.6, 2.4, 2.8, 2.6,
    2.0, 2.4, 2.6, 2.4, 2.0, 1.4, 0.9, 0.8, 0.8, 0.7, 0.5, 0.3,
)  # fmt: skip
_ACCOUNT_EXCLUDED: Final = frozenset(
    {"free_mail", "student", "competitor", "spam", "anonymous", "duplicate"}
)


def _cumulative(weights: Sequence[float]) -> list[float]:
    return list(itertools.accumulate(weights))


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in folded.lower() if ch.isalnum())


def _page_name(path: str) -> str:
    return _SECTION_NAMES.get(path.split("/")[1], "Page")


def _page_title(path: str) -> str:
    slug = path.rstrip("/").rsplit("/", 1)[-1]
    label = slug.replace("-", " ").title() if slug else "Home"
    return f"{label} | Lumen Analytics"


# --------------------------------------------------------------------------- internal state

_FORMS: Final = {
    "demo": "demo-request",
    "trial": "trial-signup",
    "download": "gated-content",
    "newsletter": "newsletter-signup",
    "webinar": "webinar-registration",
    "contact": "contact-us",
}
_ACTION_PAGES: Final = {"demo": "/demo", "trial": "/signup", "download": "/resources"}
_IP_HEADS: Final = (23, 31, 46, 52, 62, 66, 72, 81, 88, 98, 104, 151, 176, 185, 212)
# Sales verdicts for people whose profile gives them away (applied 90% of the time).
_VERDICTS: Final = {
    "student": ("reject", "student"),
    "competitor": ("reject", "competitor"),
    "spam": ("disqualify", "spam"),
    "unserved": ("disqualify", "out_of_territory"),
    "duplicate": ("disqualify", "duplicate"),
    "bad_data": ("disqualify", "bad_data"),
    "job_seeker": ("reject", "not_a_fit"),
    "role_account": ("reject", "bad_data"),
}


@dataclass
class _Company:
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
class _Person:
    archetype: str
    behaviour: _Behaviour
    user_id: str
    anonymous_id: str
    imported: bool  # first known through a server-side import (badge scan, partner list)
    known_first: bool
    country: str
    tz_ms: int
    channel: str
    campaign: _Campaign
    traits: dict[str, Any]
    cold: bool
    group: dict[str, Any] | None = None
    identified: bool = False
    hand_raised: bool = False


@dataclass(frozen=True)
class _Send:
    at: int
    campaign: _Campaign
    subject: str
    email_id: str


def _server(name: str, version: str) -> dict[str, Any]:
    return {"library": {"name": name, "version": version}}


class _Simulation:
    """Holds the seeded RNG and the growing output; one instance per `generate` call."""

    def __init__(self, rng: random.Random, now_ms: int, days: int) -> None:
        self.rng = rng
        self.now_ms = now_ms
        self.start_ms = now_ms - days * _DAY
        self.day0_ms = self.start_ms // _DAY * _DAY
        self.grid = (now_ms - self.day0_ms) // _DAY + 1  # day indices 0..grid-1
        self.out: list[tuple[int, int, dict[str, Any]]] = []
        self.seq = itertools.count()
        self.companies: list[_Company] = []
        self.open_companies: dict[str, list[_Company]] = {}
        self.domains: set[str] = set()
        self.emails: set[str] = set()
        self.user_ids: set[str] = set()
        self.business_people: list[_Person] = []
        self.iso_days: dict[int, str] = {}
        self.hour_cum = _cumulative(_HOUR_WEIGHTS)
        self.interest_cum = {k: _cumulative(v) for k, v in _INTERESTS.items()}
        self.campaign_days = {c.name: self._day_weights(c) for c in _CAMPAIGNS}
        self.by_channel = {ch: [c for c in _CAMPAIGNS if c.channel == ch] for ch in CHANNELS}
        self.by_name = {c.name: c for c in _CAMPAIGNS}
        self.revisit_paid = self.by_channel["paid_social"] + self.by_channel["paid_search"]
        self.sends = self._email_schedule()
        self.send_times = [s.at for s in self.sends]
        self.webinars = self._webinars()

    # ----------------------------------------------------------------- calendar

    def weekday(self, day: int) -> int:
        return (self.day0_ms // _DAY + day + 3) % 7  # 1970-01-01 was a Thursday

    def flight_day(self, fraction: float) -> int:
        return 1 + int(fraction * (self.grid - 2))

    def _day_weights(self, campaign: _Campaign) -> list[float]:
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
            weights.append(_WEEKDAY_FACTOR[self.weekday(day)] * trend * factor)
        return _cumulative(weights)

    def _email_schedule(self) -> list[_Send]:
        rng = self.rng
        sends: list[_Send] = []

        def add(day: int, hour: int, name: str, subject: str) -> None:
            if 1 <= day < self.grid:
                at = self.day0_ms + day * _DAY + hour * _HOUR + rng.randrange(_HOUR)
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
        for campaign in _CAMPAIGNS:
            if campaign.source == "webinar":
                centre = self.flight_day(campaign.flights[0])
                for before in (14, 7, 1):
                    add(centre - before, 15, campaign.name, "You're invited: live webinar")
        sends.sort(key=lambda s: s.at)
        return sends

    def _webinars(self) -> list[tuple[int, _Campaign]]:
        result = []
        for campaign in _CAMPAIGNS:
            if campaign.source == "webinar":
                day = self.flight_day(campaign.flights[0])
                while self.weekday(day) != 3 and day > 1:  # webinars run on Thursdays
                    day -= 1
                result.append((self.day0_ms + day * _DAY + 16 * _HOUR, campaign))
        return result

    def local_time(self, day: int, tz_ms: int) -> int:
        """A moment on `day` drawn from business hours on the person's own clock."""
        rng = self.rng
        hour = bisect.bisect(self.hour_cum, rng.random() * self.hour_cum[-1])
        at = self.day0_ms + day * _DAY + hour * _HOUR + rng.randrange(_HOUR) - tz_ms
        return max(at, self.start_ms + rng.randrange(1000, _HOUR))

    def iso(self, ms: int) -> str:
        day, rem = divmod(ms, _DAY)
        prefix = self.iso_days.get(day)
        if prefix is None:
            prefix = (date(1970, 1, 1) + timedelta(days=day)).isoformat()
            self.iso_days[day] = prefix
        hours, rem = divmod(rem, _HOUR)
        minutes, rem = divmod(rem, _MINUTE)
        seconds, millis = divmod(rem, 1000)
        return f"{prefix}T{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}Z"

    # ----------------------------------------------------------------- output

    def emit(self, at: int, message: dict[str, Any]) -> None:
        if self.start_ms <= at <= self.now_ms:
            self.out.append((at, next(self.seq), message))

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
        ctx = dict(context)
        if "library" in ctx:
            ctx["library"] = dict(ctx["library"])
        message["context"] = ctx
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
        ctx = dict(context)
        if campaign is not None:
            ctx["campaign"] = campaign
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

    # ----------------------------------------------------------------- identities

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

    def new_ip(self) -> str:
        rng = self.rng
        return (
            f"{rng.choice(_IP_HEADS)}.{rng.randrange(256)}."
            f"{rng.randrange(256)}.{rng.randrange(1, 255)}"
        )

    def unique_email(self, local: str, domain: str) -> str:
        email = f"{local}@{domain}"
        n = 1
        while email in self.emails:
            n += 1
            email = f"{local}{n}@{domain}"
        self.emails.add(email)
        return email

    def company(self, pool_name: str, country: str) -> _Company:
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
            industry = self.pick(_TARGET_INDUSTRIES)
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
            industry = self.pick(_INDUSTRIES)
        for attempt in itertools.count():
            base = rng.choice(_NAME_HEADS) + rng.choice(_NAME_TAILS)
            tld = rng.choice(_COUNTRIES[country].tlds)
            slug = _ascii(base) + (str(attempt) if attempt > 5 else "")
            domain = slug + tld
            if domain not in self.domains:
                break
        self.domains.add(domain)
        capacity = (
            rng.randint(3, 10) if rng.random() < (0.35 if pool_name == "ideal" else 0.2) else 1
        )
        company = _Company(
            len(self.companies),
            base + rng.choice(_NAME_DESIGNATIONS),
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

    def title(self, mix: str) -> _Title:
        return self.rng.choice(_TITLES[self.pick(_TITLE_MIX[mix])])

    def names(self, country: str) -> tuple[str, str]:
        firsts, lasts = _NAMES_BY_COUNTRY.get(country, _NAMES_EN)
        return self.rng.choice(firsts), self.rng.choice(lasts)

    def phone(self, country: str) -> str:
        rng = self.rng
        digits = "".join(str(rng.randrange(10)) for _ in range(10))
        prefix = _COUNTRIES[country].phone_prefix
        if prefix == "+1":
            style = rng.random()
            if style < 0.4:
                return f"+1 ({digits[:3]}) 555-{digits[3:7]}"
            if style < 0.7:
                return f"{digits[:3]}-555-{digits[3:7]}"
            return f"+1{digits[:3]}555{digits[3:7]}"
        return f"{prefix} {digits[:3]} {digits[3:6]} {digits[6:]}"

    # ----------------------------------------------------------------- people

    def make_person(self, archetype: str, behaviour: _Behaviour) -> _Person:
        rng = self.rng
        family = "ideal_buyer" if archetype == "unserved" else archetype
        channel = rng.choices(CHANNELS, _CHANNEL_MIX.get(family, _CHANNEL_MIX["default"]))[0]
        campaigns = self.by_channel[channel]
        campaign = rng.choices(campaigns, [c.weight for c in campaigns])[0]
        cold = archetype != "spam" and rng.random() < 0.15
        traits, country, group = self.traits(archetype, behaviour, channel)
        known_first = rng.random() < behaviour.known_first
        imported = known_first and channel in {"events", "partner"} and rng.random() < 0.6
        return _Person(
            archetype=archetype,
            behaviour=behaviour,
            user_id=self.new_user_id(),
            anonymous_id=self.new_anonymous_id(),
            imported=imported,
            known_first=known_first,
            country=country,
            tz_ms=int(rng.choice(_COUNTRIES[country].utc_offsets) * _HOUR),
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
        self, archetype: str, behaviour: _Behaviour, channel: str
    ) -> tuple[dict[str, Any], str, dict[str, Any] | None]:
        """Identify traits (and an optional group call) consistent with the archetype."""
        rng = self.rng
        if archetype == "duplicate" and self.business_people:
            return self.duplicate_traits(channel)
        company: dict[str, Any] | None = None
        group: dict[str, Any] | None = None
        local: str | None = None
        title: _Title | None = None
        country = self.pick(_UNSERVED) if archetype == "unserved" else self.pick(_SERVED)
        first, last = self.names(country)
        if archetype == "student":
            university, domain, country = rng.choice(_UNIVERSITIES)
            first, last = self.names(country)
            employees = rng.randint(3000, 20000)
            company = {"name": university, "employees": employees, "industry": "education"}
            title = rng.choice(_TITLES["student"])
            if rng.random() < 0.4:
                local = f"{_ascii(first)[:1]}{_ascii(last)[:6]}{rng.randint(10, 99)}"
        elif archetype == "competitor":
            name, domain, employees, industry, country = rng.choice(_COMPETITORS)
            first, last = self.names(country)
            company = {"name": name, "employees": employees, "industry": industry}
            title = rng.choice(_TITLES["competitor"])
        elif archetype == "spam":
            domain = rng.choice(_DISPOSABLE) if rng.random() < 0.8 else self.pick(_FREE_MAIL)
            if rng.random() < 0.3:
                country = self.pick(_UNSERVED)
            junk = rng.choice(_JUNK_NAMES)
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
            domain = self.pick(_FREE_MAIL)
            title = self.title("free_mail")
            if rng.random() < 0.6:
                company = {
                    "name": rng.choice(_NAME_HEADS) + " Consulting",
                    "employees": rng.randint(1, 30),
                    "industry": self.pick(_INDUSTRIES),
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
                domain = self.pick(_FREE_MAIL)
            if archetype == "role_account":
                local = rng.choice(_ROLE_LOCALS)
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

    # ----------------------------------------------------------------- journeys

    def session_days(self, person: _Person) -> list[int]:
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

    def plan_actions(self, person: _Person) -> tuple[str, list[str]]:
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

    def journey(self, person: _Person) -> None:
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
            device2 = self.new_anonymous_id()
            device2_sessions = {rng.randrange(n), rng.randrange(n)}
        bot = person.archetype == "spam"
        ua = _BOT_USER_AGENT if bot else rng.choice(_USER_AGENTS)
        ua2 = rng.choice(_USER_AGENTS[-2:])
        ip = self.new_ip()
        locale = _COUNTRIES[person.country].locale
        linked: set[str] = set()
        identified_at = -1
        trial_at = -1
        cursor = 0
        for index, day in enumerate(days):
            t = max(self.local_time(day, person.tz_ms), cursor + rng.randint(5, 90) * _MINUTE)
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
                    self.emit(t, {**link, "traits": traits, "context": dict(context)})
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
                t = self.page(t, anon, uid, context, _ACTION_PAGES[action], None)
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
        person: _Person,
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
        landing = rng.choice(_BLOG) if source.landing == "*blog" else source.landing
        campaign = {"source": source.source, "medium": source.medium, "name": source.name}
        t = self.page(t, anon, uid, context, landing, campaign)
        cum = self.interest_cum[interest]
        total = cum[-1]
        for _ in range(count - 1):
            t += int(rng.lognormvariate(10.8, 0.9))  # ~50 s median between pages
            group = _GROUP_ORDER[bisect.bisect(cum, rng.random() * total)]
            t = self.page(t, anon, uid, context, rng.choice(_PAGE_GROUPS[group]), None)
        return t

    def identify(
        self,
        person: _Person,
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
            message["context"] = dict(context)
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
        person: _Person,
        t: int,
        anon: str | None,
        uid: str | None,
        context: dict[str, Any],
        action: str,
    ) -> int:
        """A form submission and the event it stands for (demo, trial, download...)."""
        rng = self.rng
        bot = person.archetype == "spam"
        form_id = _FORMS[action]
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
            asset, kind = rng.choice(_ASSETS)
            properties = {"asset": asset, "asset_type": kind}
            t = self.track(t, anon, uid, context, "Content Downloaded", properties)
        return t

    # ----------------------------------------------------------------- server-side sources

    def email_history(self, person: _Person, identified_at: int) -> None:
        """Marketing e-mail engagement: opens, clicks (with the visit), bounces, unsubscribes."""
        rng = self.rng
        behaviour = person.behaviour
        if person.traits.get("consent_marketing") is not True:
            return
        uid = person.user_id
        open_rate = rng.uniform(*behaviour.open_rate)
        cold_after = identified_at + rng.randint(10, 40) * _DAY if person.cold else self.now_ms
        email = str(person.traits["email"])
        undeliverable = email.endswith(("10minutemail.com", "trashmail.com"))
        undeliverable = undeliverable or person.archetype == "bad_data"
        undeliverable = undeliverable or (person.archetype == "spam" and rng.random() < 0.5)
        bounce = "hard" if undeliverable else None
        unsubscribe_after = rng.randint(1, 6) if person.archetype == "unsubscriber" else -1
        opens = 0
        esp = _server("marketo-webhook", "2.0")
        locale = _COUNTRIES[person.country].locale
        start = bisect.bisect(self.send_times, identified_at + _HOUR)
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
                path = rng.choice(_BLOG) if landing == "*blog" else landing
                campaign = {"source": send.campaign.source, "medium": "email", "name": name}
                url = (
                    f"{_SITE}{path}?utm_source={campaign['source']}"
                    f"&utm_medium=email&utm_campaign={name}"
                )
                properties = {"campaign": name, "url": url, "email_id": send.email_id}
                self.track(at, None, uid, esp, "Email Link Clicked", properties)
                context = {"userAgent": rng.choice(_USER_AGENTS), "ip": self.new_ip()}
                context["locale"] = locale
                self.page(at + 1500, person.anonymous_id, uid, context, path, campaign)

    def webinar_history(self, person: _Person, identified_at: int, registered: bool) -> None:
        """Registrations (a browser form) and attendance (synced from the webinar platform)."""
        rng = self.rng
        platform = _server("zoom-webinar-sync", "3.1")
        for at, campaign in self.webinars:
            if at <= identified_at + _HOUR:
                continue
            if not (registered and campaign is person.campaign):
                if rng.random() >= person.behaviour.webinar:
                    continue
                lo = max(identified_at + _HOUR, at - 14 * _DAY)
                hi = at - 2 * _HOUR
                if lo >= hi:
                    continue
                form = {
                    "form_id": "webinar-registration",
                    "form_fill_seconds": round(rng.uniform(8, 90), 1),
                    "honeypot": "",
                    "webinar": campaign.name,
                }
                context = {"userAgent": rng.choice(_USER_AGENTS), "ip": self.new_ip()}
                reg_at = rng.randint(lo, hi)
                self.track(
                    reg_at, person.anonymous_id, person.user_id, context, "Form Submitted", form
                )
            if rng.random() < 0.45:
                properties = {"webinar": campaign.name, "duration_minutes": rng.randint(5, 60)}
                attended_at = at + rng.randint(0, 12) * _MINUTE
                self.track(
                    attended_at, None, person.user_id, platform, "Webinar Attended", properties
                )

    def product_history(self, person: _Person, trial_at: int) -> None:
        """Product usage after a trial: activation, then events no rule scores."""
        rng = self.rng
        behaviour = person.behaviour
        if rng.random() >= behaviour.activation:
            return
        app = _server("analytics-node", "6.2.0")
        uid = person.user_id
        workspace = f"ws_{rng.getrandbits(32):08x}"
        activated = trial_at + int(rng.lognormvariate(2.5, 1.2) * _HOUR)
        properties: dict[str, Any] = {"workspace_id": workspace, "members": rng.randint(1, 12)}
        self.track(activated, None, uid, app, "Workspace Activated", properties)
        span = rng.randint(10, 90)
        first_day = (activated - self.day0_ms) // _DAY
        for _ in range(rng.randint(*behaviour.product_events)):
            day = first_day + int(rng.random() ** 1.6 * span)
            at = max(self.local_time(day, person.tz_ms), activated + _MINUTE)
            if rng.random() < 0.7:
                kind = rng.choice(("funnel", "attribution", "cohort", "pipeline"))
                properties = {"workspace_id": workspace, "report_type": kind}
                self.track(at, None, uid, app, "Report Created", properties)
            else:
                target = rng.choice(("slack", "email", "link"))
                properties = {"workspace_id": workspace, "share_target": target}
                self.track(at, None, uid, app, "Dashboard Shared", properties)

    # ----------------------------------------------------------------- sales

    def quality(self, person: _Person) -> float:
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

    def sales_plan(self, person: _Person) -> tuple[SalesStep, ...]:
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
        verdict = _VERDICTS.get(person.archetype)
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
        day0 = self.day0_ms // _DAY
        rows: list[dict[str, Any]] = []
        year, month = start.year, start.month
        while (year, month) <= (end.year, end.month):
            first = datetime(year, month, 1, tzinfo=UTC)
            following = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
            covered = (min(following, end) - max(first, start)) / (following - first)
            lo_day = (max(first, start) - _EPOCH) // timedelta(days=1) - day0
            hi_day = (min(following, end) - _EPOCH) // timedelta(days=1) - day0
            for campaign in _CAMPAIGNS:
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
        names = list(_ARCHETYPES)
        shares = [_ARCHETYPES[name][0] for name in names]
        people: list[_Person] = []
        for _ in range(persons):
            archetype = rng.choices(names, shares)[0]
            person = self.make_person(archetype, _ARCHETYPES[archetype][1])
            self.journey(person)
            if archetype not in _ACCOUNT_EXCLUDED and "company" in person.traits:
                self.business_people.append(person)
            people.append(person)
        plans = {p.user_id: self.sales_plan(p) for p in people if p.identified}
        self.out.sort(key=_sort_key)
        messages: list[dict[str, Any]] = []
        iso = self.iso
        for n, (at, _, message) in enumerate(self.out):
            message["messageId"] = f"demo-{n}"
            message["timestamp"] = iso(at)
            messages.append(message)
        return DemoDataset(messages, plans, self.spend(), CHANNELS)


def _sort_key(item: tuple[int, int, dict[str, Any]]) -> tuple[int, int]:
    return item[0], item[1]


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

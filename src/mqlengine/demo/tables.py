"""The demo's data tables: campaigns, site pages, countries and names, job titles,
companies, e-mail domains, visitor archetypes and how their activity spreads over the week.

Apart from the simulation (:mod:`mqlengine.demo.generator`) so the values can be read and
tuned without the logic around them; the simulation draws from them in a fixed order, so
editing a table changes the generated dataset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

# The simulation's clock counts milliseconds since the epoch.
DAY_MS: Final = 86_400_000
HOUR_MS: Final = 3_600_000
MINUTE_MS: Final = 60_000

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

# --------------------------------------------------------------------------- campaigns


@dataclass(frozen=True)
class Campaign:
    name: str
    channel: str
    source: str
    medium: str
    monthly_spend: float
    landing: str  # "*blog" = a random blog post
    flights: tuple[float, ...]  # burst centres as fractions of the window
    weight: float  # share of the channel's acquisitions


# fmt: off
CAMPAIGNS: Final = (
    # name, channel, utm source, utm medium, monthly spend (USD), landing, flights, weight
    Campaign("seo-blog-content", "organic_search", "google", "organic", 4500, "*blog", (), 3),
    Campaign("seo-comparison-pages", "organic_search", "google", "organic", 2500,
              "/compare/rivalytics-alternative", (), 1),
    Campaign("seo-glossary", "organic_search", "bing", "organic", 1200, "*blog", (), 1),
    Campaign("brand-search-us", "paid_search", "google", "cpc", 18000, "/", (), 3),
    Campaign("competitor-terms", "paid_search", "google", "cpc", 22000,
              "/compare/rivalytics-alternative", (), 1.5),
    Campaign("generic-analytics-emea", "paid_search", "google", "cpc", 26000, "/product", (), 2),
    Campaign("bing-brand", "paid_search", "bing", "cpc", 3500, "/", (), 0.5),
    Campaign("linkedin-abm-enterprise", "paid_social", "linkedin", "paid_social", 24000,
              "/pricing/enterprise", (), 2),
    Campaign("linkedin-thought-leadership", "paid_social", "linkedin", "paid_social", 15000,
              "*blog", (0.3,), 2),
    Campaign("facebook-retargeting", "paid_social", "facebook", "paid_social", 6000,
              "/pricing", (), 1),
    Campaign("weekly-newsletter", "email", "newsletter", "email", 1500, "*blog", (), 3),
    Campaign("product-launch-announcement", "email", "marketo", "email", 2500,
              "/product/dashboards", (0.55,), 1),
    Campaign("nurture-mid-funnel", "email", "marketo", "email", 1200, "/customers", (), 1),
    Campaign("q3-analytics-webinar", "events", "webinar", "event", 6000,
              "/webinars/q3-analytics", (0.4,), 2),
    Campaign("q4-revops-webinar", "events", "webinar", "event", 5000,
              "/webinars/revops-playbook", (0.78,), 1.5),
    Campaign("saas-connect-conference", "events", "conference", "event", 35000, "/", (0.62,), 1.5),
    Campaign("london-roadshow", "events", "roadshow", "event", 12000, "/customers", (0.2,), 1),
    Campaign("customer-referral-program", "referral", "customer", "referral", 3000, "/", (), 1),
    Campaign("g2-reviews", "referral", "g2", "referral", 2500,
              "/compare/rivalytics-alternative", (), 2),
    Campaign("capterra-listing", "referral", "capterra", "referral", 1500, "/pricing", (), 1),
    Campaign("hubspot-marketplace", "partner", "hubspot", "partner", 2000,
              "/product/integrations", (), 2),
    Campaign("salesforce-appexchange", "partner", "salesforce", "partner", 3500,
              "/product/integrations", (), 1.5),
    Campaign("agency-partners", "partner", "agency", "partner", 4000, "/", (0.5,), 1),
    Campaign("brand-podcast-sponsorship", "direct", "podcast", "audio", 3000, "/", (), 1),
    Campaign("direct", "direct", "(direct)", "(none)", 0, "/", (), 4),
)
# fmt: on

# --------------------------------------------------------------------------- website

BLOG: Final = tuple(
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
PAGE_GROUPS: Final[dict[str, tuple[str, ...]]] = {
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
    "blog": ("/blog", *BLOG),
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
GROUP_ORDER: Final = tuple(PAGE_GROUPS)
# Interest profiles: weight of each page group (order as GROUP_ORDER).
INTERESTS: Final[dict[str, tuple[float, ...]]] = {
    "ideal": (1, 4, 4, 2, 1.5, 0.05, 1, 1, 0.6),
    "evaluator": (1, 2, 3, 1.5, 3, 0.1, 1.5, 1.5, 0.5),
    "power": (1, 1.5, 2, 0.5, 1, 0.05, 5, 0.5, 0.3),
    "browser": (1, 0.3, 0.8, 0.3, 8, 0.2, 0.3, 1.5, 0.3),
    "student": (1, 0.3, 1, 0.2, 5, 0.8, 3, 1.5, 0.3),
    "competitor": (1, 5, 5, 3, 1, 0.5, 2, 1.5, 1),
    "job_seeker": (1, 0.2, 0.8, 0.5, 1.5, 6, 0.2, 0.2, 1.5),
}
SECTION_NAMES: Final = {
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
ASSETS: Final = (
    ("State of B2B Analytics 2026", "report"),
    ("RevOps Playbook", "ebook"),
    ("Lead Scoring Template", "template"),
    ("Attribution Buyer's Guide", "ebook"),
    ("ROI Calculator", "tool"),
    ("Demand Gen Benchmarks", "report"),
)
USER_AGENTS: Final = (
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
BOT_USER_AGENT: Final = "python-requests/2.31.0"

# --------------------------------------------------------------------------- people


@dataclass(frozen=True)
class Country:
    weight: float  # share of people, within the served or the unserved group
    served: bool
    utc_offsets: tuple[float, ...]  # standard time (DST ignored)
    locale: str
    phone_prefix: str
    tlds: tuple[str, ...]


GENERIC_TLDS: Final = (".com", ".com", ".io", ".ai", ".co")
# fmt: off
COUNTRIES: Final[dict[str, Country]] = {
    "US": Country(45, True, (-5, -5, -6, -8, -7), "en-US", "+1", GENERIC_TLDS),
    "GB": Country(12, True, (0,), "en-GB", "+44", (".co.uk", ".com", ".io")),
    "DE": Country(8, True, (1,), "de-DE", "+49", (".de", ".com", ".io")),
    "FR": Country(6, True, (1,), "fr-FR", "+33", (".fr", ".com")),
    "CA": Country(6, True, (-5, -8), "en-CA", "+1", (".ca", ".com")),
    "NL": Country(4, True, (1,), "nl-NL", "+31", (".nl", ".com")),
    "AU": Country(3, True, (10, 8), "en-AU", "+61", (".com.au", ".com")),
    "IE": Country(1.5, True, (0,), "en-IE", "+353", (".ie", ".com")),
    "ES": Country(1.5, True, (1,), "es-ES", "+34", (".es", ".com")),
    "IT": Country(1.5, True, (1,), "it-IT", "+39", (".it", ".com")),
    "BR": Country(3, False, (-3,), "pt-BR", "+55", (".com.br", ".com")),
    "IN": Country(4, False, (5.5,), "en-IN", "+91", (".in", ".com", ".io")),
    "CN": Country(2, False, (8,), "zh-CN", "+86", (".cn", ".com")),
    "RU": Country(1.5, False, (3,), "ru-RU", "+7", (".ru", ".com")),
    "MX": Country(1, False, (-6,), "es-MX", "+52", (".com.mx", ".com")),
    "ZA": Country(1, False, (2,), "en-ZA", "+27", (".co.za", ".com")),
    "NG": Country(0.7, False, (1,), "en-NG", "+234", (".ng", ".com")),
    "PK": Country(0.6, False, (5,), "en-PK", "+92", (".pk", ".com")),
}
# fmt: on
SERVED: Final = tuple((k, c.weight) for k, c in COUNTRIES.items() if c.served)
UNSERVED: Final = tuple((k, c.weight) for k, c in COUNTRIES.items() if not c.served)

NAMES_EN: Final = (
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
NAMES_BY_COUNTRY: Final[dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
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
Title = tuple[str, str | None, str | None]
# fmt: off
TITLES: Final[dict[str, tuple[Title, ...]]] = {
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
TITLE_MIX: Final[dict[str, tuple[tuple[str, float], ...]]] = {
    "ideal": (("senior_target", 70), ("executive", 12), ("manager_target", 18)),
    "evaluator": (("manager_target", 35), ("ic_target", 25), ("senior_other", 12),
                  ("ic_other", 23), ("executive", 5)),
    "power": (("ic_other", 40), ("manager_target", 30), ("ic_target", 30)),
    "browser": (("ic_target", 30), ("ic_other", 35), ("manager_target", 20), ("intern", 5),
                ("senior_target", 5), ("senior_other", 5)),
    "free_mail": (("freelance", 25), ("ic_target", 25), ("ic_other", 25), ("manager_target", 25)),
    "job_seeker": (("ic_other", 50), ("ic_target", 40), ("intern", 10)),
}
INDUSTRIES: Final = (
    ("software", 5.0), ("fintech", 2.0), ("ecommerce", 2.0), ("healthcare", 1.5),
    ("manufacturing", 1.5), ("education", 0.7), ("retail", 1.2), ("media", 1.0),
    ("consulting", 1.3),
)
# fmt: on
TARGET_INDUSTRIES: Final = (("software", 5.0), ("fintech", 2.5), ("ecommerce", 2.5))
NAME_HEADS: Final = (
    "North", "Blue", "Bright", "Cobalt", "Summit", "Harbor", "Pioneer", "Silver", "Granite",
    "Maple", "Orbit", "Vertex", "Lumen", "Crimson", "Atlas", "Nimbus", "Quantum", "Cedar",
    "Falcon", "Evergreen", "Iron", "Polar", "Nova", "Beacon", "Helix", "Sable", "Tidal",
    "Copper", "Keystone", "Aurora", "Juniper", "Redwood", "Zenith", "Prairie", "Ember",
    "Meridian", "Osprey", "Willow", "Stellar", "Arbor", "Crest", "Delta", "Echo", "Fable",
    "Glacier", "Horizon", "Indigo", "Kestrel", "Lattice", "Mosaic",
)  # fmt: skip
NAME_TAILS: Final = (
    "wind", "stack", "ly", "labs", "soft", "works", "data", "ware", "metrics", "logic", "point",
    "bridge", "flow", "scale", "path", "forge", "wave", "grid", "line", "field", "gate",
    "mark", "base", "loop", "sync", "cloud", "hub", "spark", "nest", "shift",
)  # fmt: skip
NAME_DESIGNATIONS: Final = ("", "", "", " Inc.", " Labs", " Systems", " Group", " GmbH", " Ltd")
FREE_MAIL: Final = (
    ("gmail.com", 55.0),
    ("yahoo.com", 15.0),
    ("hotmail.com", 12.0),
    ("outlook.com", 13.0),
)
DISPOSABLE: Final = (
    "mailinator.com",
    "guerrillamail.com",
    "10minutemail.com",
    "yopmail.com",
    "trashmail.com",
)
COMPETITORS: Final = (
    ("Rivalytics", "rivalytics.com", 350, "software", "US"),
    ("CompeteLabs", "competelabs.io", 120, "software", "GB"),
    ("MetricMonger", "metricmonger.com", 60, "software", "DE"),
)
UNIVERSITIES: Final = (
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
ROLE_LOCALS: Final = ("info", "sales", "marketing", "contact", "hello", "admin", "office", "team")
JUNK_NAMES: Final = ("asdf", "test", "qwerty", "aaa", "xxx", "sdfsdf", "fgh", "null")

# --------------------------------------------------------------------------- archetypes


@dataclass(frozen=True)
class Behaviour:
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
) -> Behaviour:
    return Behaviour(
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
ARCHETYPES: Final[dict[str, tuple[float, Behaviour]]] = {
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
CHANNEL_MIX: Final[dict[str, tuple[float, ...]]] = {
    "default": (26, 16, 12, 4, 8, 6, 6, 22),
    "ideal_buyer": (14, 18, 20, 4, 14, 8, 8, 14),
    "browser": (45, 8, 14, 4, 3, 4, 2, 20),
    "student": (55, 6, 8, 2, 4, 3, 1, 21),
    "spam": (10, 25, 30, 0, 0, 5, 0, 30),
    "job_seeker": (40, 5, 10, 0, 2, 5, 0, 38),
}
WEEKDAY_FACTOR: Final = (1.0, 1.1, 1.1, 1.0, 0.8, 0.3, 0.25)
HOUR_WEIGHTS: Final = (
    0.2, 0.1, 0.05, 0.05, 0.05, 0.1, 0.3, 0.8, 1.6, 2.4, 2.8, 2.6,
    2.0, 2.4, 2.6, 2.4, 2.0, 1.4, 0.9, 0.8, 0.8, 0.7, 0.5, 0.3,
)  # fmt: skip
ACCOUNT_EXCLUDED: Final = frozenset(
    {"free_mail", "student", "competitor", "spam", "anonymous", "duplicate"}
)


FORMS: Final = {
    "demo": "demo-request",
    "trial": "trial-signup",
    "download": "gated-content",
    "newsletter": "newsletter-signup",
    "webinar": "webinar-registration",
    "contact": "contact-us",
}
ACTION_PAGES: Final = {"demo": "/demo", "trial": "/signup", "download": "/resources"}
IP_HEADS: Final = (23, 31, 46, 52, 62, 66, 72, 81, 88, 98, 104, 151, 176, 185, 212)
# Sales verdicts for people whose profile gives them away (applied 90% of the time).
VERDICTS: Final = {
    "student": ("reject", "student"),
    "competitor": ("reject", "competitor"),
    "spam": ("disqualify", "spam"),
    "unserved": ("disqualify", "out_of_territory"),
    "duplicate": ("disqualify", "duplicate"),
    "bad_data": ("disqualify", "bad_data"),
    "job_seeker": ("reject", "not_a_fit"),
    "role_account": ("reject", "bad_data"),
}

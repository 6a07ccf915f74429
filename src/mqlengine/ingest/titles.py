"""Job title → seniority and department, for fit scoring and routing.

Fit rules speak in a small fixed vocabulary (``seniority: [vp, c_level]``), while people type
titles freely ("V.P. of Sales", "Sr. Mgr, Demand Gen", "Co-founder & CTO"). This module maps
one onto the other with a hand-written lexicon: predictable, explainable (``matched`` says
which words decided) and fast enough for every ingested identify call. No model, no I/O.

How a title is read:

1. Normalise: accents dropped, case folded, dotted acronyms collapsed ("V.P." → "vp"),
   apostrophes removed, everything else split into words and separators.
2. Scan left to right, matching the *longest* lexicon phrase at each word, so "vice
   president" wins over "president", "marketing operations" over "marketing", "product
   owner" over "owner".
3. Context: words after "at"/"@" (the employer) and after "ex"/"former"/"retired" (a past
   job) are ignored up to the next hard separator (``, / | ; : ( )`` or a spaced dash). Words
   after "to" ("Assistant to the VP", "Chief of Staff to the CEO") name somebody else: they
   may give the department but never the seniority.
4. Seniority: the highest-ranked hit wins, with two overrides: intern/trainee words beat
   everything ("CEO Intern" is an intern), and an assistant role ("Executive Assistant",
   "Marketing Assistant", "Assistant to …") is ``individual``. "Assistant" as a modifier
   keeps the rank it modifies ("Assistant Manager" → manager, "Assistant Vice President" →
   vp). Rank order: c_level > vp > head > director > manager > student > senior > individual.
5. Department: among the hits that decided the seniority, the first with a department
   (a functional one preferred over ``executive``, so "Co-founder & CTO" is engineering);
   otherwise the first department named anywhere. A c_level title naming no function is
   ``executive``; any other title with a department but no rank word is ``individual``.

Decisions worth knowing (each is a line in ``_LEXICON``):

* Managing Director, Geschäftsführer, Founder, Owner, President, Partner (alone),
  Chairman, Board Member, Non-Executive Director → c_level. Managing Director is c_level
  because in most of Europe it is the title of the company's chief executive; in banking
  it is the top rank below the C-suite, which for lead scoring is the same audience.
* Executive Director → director (a rank in pharma and banking, not the CEO); General
  Manager → director; Chief of Staff → director; General Counsel → head (of legal).
* Seniority reflects the title's words, not span of control: "Product Manager" and
  "Account Manager" are ``manager``, as the common enrichment vendors report them.
* "Staff" means senior only before engineering words ("Staff Engineer", not "Staff
  Accountant"); "Partner" is c_level only standing alone ("Partner, Acme Ventures", not
  "Partner Manager" or "People Partner"); "CRO" before "specialist"/"manager"/… is
  conversion-rate optimisation (marketing), otherwise Chief Revenue Officer (sales).
* Ambiguous abbreviations (CSO, CCO) are c_level without a department, so ``executive``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

SENIORITIES = (
    "c_level",
    "vp",
    "head",
    "director",
    "manager",
    "senior",
    "individual",
    "intern",
    "student",
)
DEPARTMENTS = (
    "executive",
    "marketing",
    "sales",
    "revenue_operations",
    "customer_success",
    "engineering",
    "product",
    "data",
    "design",
    "finance",
    "hr",
    "it",
    "operations",
    "legal",
    "education",
)


@dataclass(frozen=True, slots=True)
class TitleInfo:
    """What a job title says about its holder; ``matched`` explains the decision."""

    seniority: str | None
    department: str | None
    matched: str


@dataclass(frozen=True, slots=True)
class _Rule:
    seniority: str | None = None
    department: str | None = None
    assistant: bool = False  # an assistant role: individual whatever rank it mentions
    final_only: bool = False  # only at the end of a clause ("Marketing Assistant")
    alone: bool = False  # only as the whole clause ("Partner, Acme")
    only_next: frozenset[str] | None = None  # only before one of these words
    unless_next: frozenset[str] = frozenset()  # never before one of these words


_HARD = frozenset(",/|;:()[]{}")  # end a clause and any ignore/"to" context
_SOFT = frozenset({"&", "+", "and"})  # end a clause for final_only/alone, keep context
_IGNORE_FROM = frozenset({"at", "ex", "former", "formerly", "previously", "retired"})

_RANK = {
    "c_level": 1,
    "vp": 2,
    "head": 3,
    "director": 4,
    "manager": 5,
    "student": 6,
    "senior": 7,
    "individual": 8,
}


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_ROLE_NOUNS = _words(
    "manager mgr lead director head specialist analyst coordinator consultant expert "
    "strategist executive program programme recruiter recruiting recruitment optimization "
    "optimisation marketing"
)
_STUDENT_STAFF = _words(
    "success services service affairs recruitment recruiting support experience life "
    "engagement enrollment enrolment admissions advisor adviser counselor counsellor "
    "officer coordinator administrator records finance housing activities"
)
_STAFF_TECH = _words(
    "engineer software developer scientist designer data product ml machine backend "
    "frontend fullstack site security research ux infrastructure platform"
)
_DEGREE_WORDS = _words("student students major graduate undergraduate undergrad phd degree")

# phrase alternatives ("|"-separated) → rules tried in order; first whose context fits wins.
_SPEC: list[tuple[str, tuple[_Rule, ...]]] = [
    # --- c_level ---
    (
        "ceo|chief executive|chief executive officer|cxo|c suite|c level|pdg|directeur general",
        (_Rule(seniority="c_level", department="executive"),),
    ),
    (
        "founder|founders|cofounder|co founder|founding partner|owner|co owner|business owner"
        "|president|chairman|chairwoman|chairperson|chair of the board|board member"
        "|member of the board|board director|non executive director|non exec director"
        "|managing partner|general partner|senior partner|equity partner|entrepreneur"
        "|solopreneur|proprietor|inhaber|inhaberin|grunder|gruender|grunderin"
        "|geschaftsfuhrer|geschaftsfuhrerin|geschaeftsfuehrer",
        (_Rule(seniority="c_level", department="executive"),),
    ),
    (
        "partner",
        (_Rule(seniority="c_level", department="executive", alone=True), _Rule(department="sales")),
    ),
    ("chief|managing director|cso|cco", (_Rule(seniority="c_level"),)),
    ("cto|chief technical officer", (_Rule(seniority="c_level", department="engineering"),)),
    ("cfo", (_Rule(seniority="c_level", department="finance"),)),
    ("cmo", (_Rule(seniority="c_level", department="marketing"),)),
    (
        "cro",
        (
            _Rule(seniority="c_level", department="sales", unless_next=_ROLE_NOUNS),
            _Rule(department="marketing"),
        ),
    ),
    ("coo", (_Rule(seniority="c_level", department="operations"),)),
    (
        "cio|ciso|chief information officer|chief information security officer",
        (_Rule(seniority="c_level", department="it"),),
    ),
    ("cpo", (_Rule(seniority="c_level", department="product"),)),
    ("cdo", (_Rule(seniority="c_level", department="data"),)),
    ("chro", (_Rule(seniority="c_level", department="hr"),)),
    # --- vp / head / director / manager ---
    ("vp|vps|svp|evp|avp|rvp|gvp|vice president|vice pres|vicepresident", (_Rule(seniority="vp"),)),
    ("head|leiter|leiterin|abteilungsleiter|abteilungsleiterin", (_Rule(seniority="head"),)),
    ("general counsel", (_Rule(seniority="head", department="legal"),)),
    (
        "dean|head teacher|headteacher|headmaster|head master",
        (_Rule(seniority="head", department="education"),),
    ),
    ("vertriebsleiter", (_Rule(seniority="head", department="sales"),)),
    ("marketingleiter", (_Rule(seniority="head", department="marketing"),)),
    (
        "director|dir|directeur|directrice|direktor|direktorin|direttore|associate director"
        "|executive director|general manager",
        (_Rule(seniority="director"),),
    ),
    ("chief of staff", (_Rule(seniority="director", department="executive"),)),
    ("account director", (_Rule(seniority="director", department="sales"),)),
    ("art director", (_Rule(seniority="director", department="design"),)),
    (
        "manager|mgr|mngr|manger|supervisor|team lead|team leader|teamlead|teamleiter"
        "|teamleiterin|gerente|responsable",
        (_Rule(seniority="manager"),),
    ),
    ("pm", (_Rule(seniority="manager", department="product"),)),
    ("pmm", (_Rule(seniority="manager", department="marketing"),)),
    ("tpm", (_Rule(seniority="manager", department="engineering"),)),
    ("account manager", (_Rule(seniority="manager", department="sales"),)),
    (
        "csm|tam|technical account manager",
        (_Rule(seniority="manager", department="customer_success"),),
    ),
    ("office manager", (_Rule(seniority="manager", department="operations"),)),
    # --- senior ---
    ("senior|sr|snr|principal|lead", (_Rule(seniority="senior"),)),
    ("staff", (_Rule(seniority="senior", only_next=_STAFF_TECH), _Rule())),
    ("member of technical staff", (_Rule(seniority="senior", department="engineering"),)),
    # --- intern / student ---
    (
        "intern|interns|internship|praktikum",
        (_Rule(seniority="intern", unless_next=_ROLE_NOUNS), _Rule()),
    ),
    (
        "trainee|apprentice|apprenticeship|working student|werkstudent|werkstudentin|praktikant"
        "|praktikantin|stagiaire|becario|becaria|tirocinante|co op|summer associate",
        (_Rule(seniority="intern"),),
    ),
    (
        "student|students",
        (_Rule(seniority="student", unless_next=_STUDENT_STAFF), _Rule(department="education")),
    ),
    (
        "phd candidate|phd student|phd researcher|doctoral candidate|doctoral student"
        "|doctoral researcher|doktorand|doktorandin|undergraduate|undergrad|graduate student"
        "|grad student|postgraduate|masters student|master student|msc student|mba student"
        "|mba candidate|bachelor student|bachelors student|pupil|studentin|etudiant|etudiante"
        "|estudiante|studente|studentessa",
        (_Rule(seniority="student"),),
    ),
    # --- assistants (individual whatever rank they mention) ---
    (
        "assistant|asst",
        (
            _Rule(seniority="individual", assistant=True, only_next=frozenset({"to"})),
            _Rule(seniority="individual", assistant=True, final_only=True),
            _Rule(),
        ),
    ),
    (
        "executive assistant|personal assistant|administrative assistant|admin assistant"
        "|virtual assistant|office assistant",
        (_Rule(seniority="individual", assistant=True),),
    ),
    (
        "teaching assistant|research assistant|graduate assistant",
        (_Rule(seniority="individual", department="education", assistant=True),),
    ),
    # --- individual contributors ---
    (
        "analyst|specialist|associate|consultant|coordinator|co ordinator|representative|rep"
        "|executive|exec|officer|administrator|admin|agent|advisor|adviser|strategist|generalist"
        "|freelancer|freelance|contractor|self employed|junior|jr|entry level|writer|researcher"
        "|technician|scientist|founders associate",
        (_Rule(seniority="individual"),),
    ),
    (
        "engineer|developer|programmer|architect|swe|sde|sre|sdet|product engineer",
        (_Rule(seniority="individual", department="engineering"),),
    ),
    ("designer|illustrator", (_Rule(seniority="individual", department="design"),)),
    ("accountant|bookkeeper|auditor", (_Rule(seniority="individual", department="finance"),)),
    (
        "recruiter|sourcer|headhunter|head hunter|technical recruiter",
        (_Rule(seniority="individual", department="hr"),),
    ),
    ("marketer|copywriter", (_Rule(seniority="individual", department="marketing"),)),
    (
        "account executive|acct exec|ae|sdr|bdr",
        (_Rule(seniority="individual", department="sales"),),
    ),
    (
        "teacher|professor|lecturer|tutor|instructor|educator",
        (_Rule(seniority="individual", department="education"),),
    ),
    (
        "attorney|lawyer|paralegal|solicitor|barrister|counsel",
        (_Rule(seniority="individual", department="legal"),),
    ),
    ("product owner", (_Rule(seniority="individual", department="product"),)),
    ("data owner|statistician", (_Rule(seniority="individual", department="data"),)),
    ("account owner", (_Rule(seniority="individual", department="sales"),)),
    ("process owner", (_Rule(seniority="individual", department="operations"),)),
    (
        "system owner|dba|database administrator|system administrator|systems administrator"
        "|system admin|sysadmin",
        (_Rule(seniority="individual", department="it"),),
    ),
    # --- departments ---
    (
        "marketing|mktg|demand gen|demand generation|demandgen|growth|brand|branding|content"
        "|seo|sem|ppc|product marketing|partner marketing|communications|comms|public relations"
        "|pr|social media|lead generation|lead gen|community|events|abm|go to market|gtm"
        "|user acquisition|lifecycle|advertising|media|campaign|campaigns"
        "|conversion rate optimization|conversion rate optimisation",
        (_Rule(department="marketing"),),
    ),
    (
        "sales|business development|bizdev|biz dev|bd|sales development|inside sales"
        "|account management|key account|solutions engineer|solution engineer"
        "|solutions consultant|presales|pre sales|channel|partnerships|partnership|alliances"
        "|alliance|commercial|revenue|new business|vertrieb|ventas|channel partner"
        "|technology partner|strategic partner|alliance partner",
        (_Rule(department="sales"),),
    ),
    (
        "revops|rev ops|revenue operations|sales operations|sales ops|salesops"
        "|marketing operations|marketing ops|mops|gtm operations|go to market operations"
        "|sales enablement|enablement|marketing automation|deal desk|salesforce administrator"
        "|salesforce admin|hubspot administrator|hubspot admin|crm administrator|crm admin"
        "|customer success operations|cs ops|cs operations",
        (_Rule(department="revenue_operations"),),
    ),
    (
        "customer success|customer experience|cx|customer support|customer service|customer care"
        "|customer operations|customer|support|client success|client services|client service"
        "|onboarding|implementation|professional services|technical support",
        (_Rule(department="customer_success"),),
    ),
    ("cs", (_Rule(department="customer_success", unless_next=_DEGREE_WORDS), _Rule())),
    (
        "engineering|eng|engg|software|dev|devops|dev ops|site reliability|full stack|fullstack"
        "|frontend|front end|backend|back end|qa|quality assurance|test automation|tech"
        "|technology|rnd|research and development|platform|infrastructure|cloud|mobile|ios"
        "|android|embedded|firmware",
        (_Rule(department="engineering"),),
    ),
    ("product|product management", (_Rule(department="product"),)),
    (
        "data|analytics|data science|machine learning|ml|ai|artificial intelligence|bi"
        "|business intelligence|insights",
        (_Rule(department="data"),),
    ),
    (
        "design|ux|ui|user experience|user interface|ux research|user research|creative"
        "|graphic|visual|interaction|product designer",
        (_Rule(department="design"),),
    ),
    (
        "finance|financial|accounting|controller|comptroller|treasury|treasurer|fpa|bookkeeping"
        "|payroll|audit|tax|billing|accounts payable|accounts receivable|investor relations",
        (_Rule(department="finance"),),
    ),
    (
        "hr|human resources|people|talent|recruiting|recruitment|talent acquisition|hrbp"
        "|people operations|people ops|lnd|learning and development|compensation|benefits"
        "|total rewards|employee experience|executive search|personnel|business partner",
        (_Rule(department="hr"),),
    ),
    (
        "it|information technology|information security|infosec|security|cybersecurity"
        "|cyber security|cyber|network|networks|helpdesk|help desk|service desk"
        "|desktop support|database|data center|data centre|business systems",
        (_Rule(department="it"),),
    ),
    (
        "operations|operating|ops|business operations|bizops|biz ops|supply chain|logistics"
        "|procurement|purchasing|facilities|administration|production|manufacturing"
        "|warehouse|fulfillment|fulfilment",
        (_Rule(department="operations"),),
    ),
    ("legal|compliance|privacy|contracts|clo|data protection", (_Rule(department="legal"),)),
    (
        "faculty|teaching|school|university|academic|curriculum|postdoc|postdoctoral"
        "|research fellow|admissions|registrar",
        (_Rule(department="education"),),
    ),
]


def _build_lexicon() -> tuple[dict[tuple[str, ...], tuple[_Rule, ...]], int]:
    lexicon: dict[tuple[str, ...], tuple[_Rule, ...]] = {}
    for phrases, rules in _SPEC:
        for phrase in phrases.split("|"):
            key = tuple(phrase.split())
            if key in lexicon:  # pragma: no cover - guards the table itself
                raise AssertionError(f"title phrase listed twice: {phrase!r}")
            lexicon[key] = rules
    return lexicon, max(len(key) for key in lexicon)


_LEXICON, _MAX_PHRASE = _build_lexicon()

_ACRONYM = re.compile(r"\b[a-z](?:\.\s?[a-z])+\b\.?")  # "v.p." / "c.e.o" / "v. p."
_AMPERSAND_WORDS = {"r&d": "rnd", "fp&a": "fpa", "l&d": "lnd"}
_DASH_SEPARATOR = re.compile(r"\s[-\u2010-\u2015]+\s|[\u2013\u2014\u2015]")
_TOKEN = re.compile(r"[a-z0-9]+|[,/|;:()\[\]{}&+]")


def _tokens(title: str) -> list[str]:
    text = unicodedata.normalize("NFKD", title)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).casefold()
    text = re.sub(r"['\u2018\u2019`\u00b4]", "", text)
    for compound, word in _AMPERSAND_WORDS.items():
        text = text.replace(compound, f" {word} ")
    text = _ACRONYM.sub(lambda m: re.sub(r"[.\s]", "", m.group()), text)
    text = _DASH_SEPARATOR.sub(" , ", text).replace("@", " at ")
    return _TOKEN.findall(text)


@dataclass(frozen=True, slots=True)
class _Hit:
    rule: _Rule
    phrase: str
    about_someone_else: bool  # after "to": may give a department, never a seniority


def _is_boundary(token: str | None) -> bool:
    return token is None or token in _HARD or token in _SOFT or token in _IGNORE_FROM


def _fits(rule: _Rule, before: str | None, after: str | None) -> bool:
    if rule.only_next is not None and after not in rule.only_next:
        return False
    if after is not None and after in rule.unless_next:
        return False
    if rule.final_only and not _is_boundary(after):
        return False
    return not (rule.alone and not (_is_boundary(before) and _is_boundary(after)))


def _scan(tokens: Sequence[str]) -> list[_Hit]:
    hits: list[_Hit] = []
    ignoring = about_someone_else = False
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token in _HARD:
            ignoring = about_someone_else = False
        elif token in _SOFT or ignoring:
            pass
        elif token in _IGNORE_FROM:
            ignoring = True
        elif token == "to":
            about_someone_else = True
        else:
            found = _match_at(tokens, i)
            if found is not None:
                rule, length = found
                if rule.seniority or rule.department:
                    phrase = " ".join(tokens[i : i + length])
                    hits.append(_Hit(rule, phrase, about_someone_else))
                i += length
                continue
        i += 1
    return hits


def _match_at(tokens: Sequence[str], i: int) -> tuple[_Rule, int] | None:
    before = tokens[i - 1] if i > 0 else None
    for length in range(min(_MAX_PHRASE, len(tokens) - i), 0, -1):
        rules = _LEXICON.get(tuple(tokens[i : i + length]))
        if rules is None:
            continue
        after = tokens[i + length] if i + length < len(tokens) else None
        for rule in rules:
            if _fits(rule, before, after):
                return rule, length
    return None


def _pick_seniority(hits: Iterable[_Hit]) -> tuple[str | None, list[_Hit], str]:
    ranked = [hit for hit in hits if hit.rule.seniority and not hit.about_someone_else]
    interns = [hit for hit in ranked if hit.rule.seniority == "intern"]
    assistants = [hit for hit in ranked if hit.rule.assistant]
    for overriding, seniority, why in (
        (interns, "intern", "an intern role outranks"),
        (assistants, "individual", "an assistant role outranks"),
    ):
        if overriding:
            others = sorted({hit.phrase for hit in ranked if hit not in overriding})
            note = f"{why} '{', '.join(others)}'" if others else ""
            return seniority, overriding, note
    if not ranked:
        return None, [], ""
    best = min(_RANK[hit.rule.seniority or "individual"] for hit in ranked)
    deciding = [hit for hit in ranked if _RANK[hit.rule.seniority or "individual"] == best]
    return deciding[0].rule.seniority, deciding, ""


def _pick_department(hits: Sequence[_Hit], deciding: Sequence[_Hit]) -> _Hit | None:
    # A rank word's own function wins ("CEO, Acme Marketing"); a role noun's does not
    # ("Sales Engineer" is sales, "Support Engineer" customer success).
    ranked = [hit for hit in deciding if hit.rule.seniority != "individual"]
    for pool in (ranked, hits):
        with_department = [hit for hit in pool if hit.rule.department]
        functional = [hit for hit in with_department if hit.rule.department != "executive"]
        if functional or with_department:
            return (functional or with_department)[0]
    return None


def parse_title(title: str | None) -> TitleInfo:
    """Read seniority and department from a free-text job title; never raises.

    Returns ``TitleInfo(None, None, ...)`` when nothing is recognised, so callers can tell
    "unknown" from a guess. See the module docstring for the rules and decisions.
    """
    if title is None or not title.strip():
        return TitleInfo(None, None, "no title")
    hits = _scan(_tokens(title))
    seniority, deciding, note = _pick_seniority(hits)
    department_hit = _pick_department(hits, deciding)
    department = department_hit.rule.department if department_hit else None

    reasons: list[str] = []
    if seniority is not None:
        reasons.append(f"seniority {seniority} from '{deciding[0].phrase}'")
        if note:
            reasons.append(note)
    if department_hit is not None:
        reasons.append(f"department {department} from '{department_hit.phrase}'")
    if seniority == "c_level" and department is None:
        department = "executive"
        reasons.append("department executive: c-level title naming no function")
    if seniority is None and department is not None:
        seniority = "individual"
        reasons.insert(0, "seniority individual: department named without a rank")
    return TitleInfo(seniority, department, "; ".join(reasons) or "nothing recognised")

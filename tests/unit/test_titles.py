"""Title parsing: a table of real-world titles, the documented decisions, and robustness."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mqlengine.ingest.titles import DEPARTMENTS, SENIORITIES, TitleInfo, parse_title

# (title, expected seniority, expected department)
TITLES: list[tuple[str, str | None, str | None]] = [
    # c-level and founders
    ("CEO", "c_level", "executive"),
    ("Chief Executive Officer", "c_level", "executive"),
    ("C.E.O.", "c_level", "executive"),
    ("Founder & CEO", "c_level", "executive"),
    ("Co-founder & CTO", "c_level", "engineering"),
    ("CTO", "c_level", "engineering"),
    ("Chief Technology Officer", "c_level", "engineering"),
    ("CFO", "c_level", "finance"),
    ("Chief Financial Officer", "c_level", "finance"),
    ("CMO", "c_level", "marketing"),
    ("Chief Marketing Officer", "c_level", "marketing"),
    ("CRO", "c_level", "sales"),
    ("Chief Revenue Officer", "c_level", "sales"),
    ("COO", "c_level", "operations"),
    ("Chief Operating Officer", "c_level", "operations"),
    ("CIO", "c_level", "it"),
    ("CISO", "c_level", "it"),
    ("Chief Information Security Officer", "c_level", "it"),
    ("Chief People Officer", "c_level", "hr"),
    ("Chief Customer Officer", "c_level", "customer_success"),
    ("Chief Product Officer", "c_level", "product"),
    ("Chief Data Officer", "c_level", "data"),
    ("Owner", "c_level", "executive"),
    ("Owner/Operator", "c_level", "executive"),
    ("President", "c_level", "executive"),
    ("President & CEO", "c_level", "executive"),
    ("Co-Founder", "c_level", "executive"),
    ("Cofounder, Head of Product", "c_level", "executive"),
    ("Managing Director", "c_level", "executive"),
    ("Managing Director, Sales", "c_level", "sales"),
    ("Geschäftsführer", "c_level", "executive"),
    ("Partner, Acme Ventures", "c_level", "executive"),
    ("Chairman of the Board", "c_level", "executive"),
    ("Non-Executive Director", "c_level", "executive"),
    ("Fractional CMO", "c_level", "marketing"),
    # vp
    ("VP of Sales", "vp", "sales"),
    ("V.P. of Sales", "vp", "sales"),
    ("V. P. Sales", "vp", "sales"),
    ("VP Marketing", "vp", "marketing"),
    ("SVP, Engineering", "vp", "engineering"),
    ("EVP Finance", "vp", "finance"),
    ("AVP, Information Technology", "vp", "it"),
    ("Vice President, Customer Success", "vp", "customer_success"),
    ("Vice-President of Product", "vp", "product"),
    ("Senior Vice President, Revenue Operations", "vp", "revenue_operations"),
    ("Assistant Vice President", "vp", None),
    ("VP, Head of Demand Gen", "vp", "marketing"),
    ("Vice President Sales & Marketing", "vp", "sales"),
    # head
    ("Head of RevOps", "head", "revenue_operations"),
    ("Head of Growth", "head", "marketing"),
    ("Head of People", "head", "hr"),
    ("Head of Data", "head", "data"),
    ("Head of Design", "head", "design"),
    ("Head of Legal", "head", "legal"),
    ("Head of Customer Success EMEA", "head", "customer_success"),
    ("General Counsel", "head", "legal"),
    # director
    ("Director of Engineering", "director", "engineering"),
    ("Director - Marketing Operations", "director", "revenue_operations"),
    ("Director, Sales Operations", "director", "revenue_operations"),
    ("Sr. Director, Product Marketing", "director", "marketing"),
    ("Senior Director of Finance", "director", "finance"),
    ("Dir. Talent Acquisition", "director", "hr"),
    ("Associate Director, Analytics", "director", "data"),
    ("Creative Director", "director", "design"),
    ("Art Director", "director", "design"),
    ("Executive Director", "director", None),
    ("IT Director", "director", "it"),
    ("Chief of Staff", "director", "executive"),
    ("Chief of Staff to the CEO", "director", "executive"),
    # manager
    ("Marketing Manager", "manager", "marketing"),
    ("Sr. Mgr, Demand Gen", "manager", "marketing"),
    ("Product Marketing Manager", "manager", "marketing"),
    ("PMM", "manager", "marketing"),
    ("Product Manager", "manager", "product"),
    ("Senior PM", "manager", "product"),
    ("Engineering Manager", "manager", "engineering"),
    ("Customer Success Manager", "manager", "customer_success"),
    ("CSM", "manager", "customer_success"),
    ("Account Manager", "manager", "sales"),
    ("Team Lead, SDR", "manager", "sales"),
    ("Office Manager", "manager", "operations"),
    ("HR Manager", "manager", "hr"),
    ("Assistant Manager", "manager", None),
    ("Partner Manager", "manager", "sales"),
    ("Student Success Manager", "manager", "education"),
    ("Marketing Ops Manager", "manager", "revenue_operations"),
    # senior
    ("Senior Software Engineer", "senior", "engineering"),
    ("Sr. Data Scientist", "senior", "data"),
    ("Principal Engineer", "senior", "engineering"),
    ("Staff Software Engineer", "senior", "engineering"),
    ("Lead Designer", "senior", "design"),
    ("Tech Lead", "senior", "engineering"),
    ("Senior Account Executive", "senior", "sales"),
    ("Senior UX Researcher", "senior", "design"),
    # individual
    ("Software Engineer", "individual", "engineering"),
    ("Account Executive", "individual", "sales"),
    ("AE", "individual", "sales"),
    ("SDR", "individual", "sales"),
    ("Business Development Representative", "individual", "sales"),
    ("Data Analyst", "individual", "data"),
    ("Marketing Specialist", "individual", "marketing"),
    ("Lead Generation Specialist", "individual", "marketing"),
    ("SEO Specialist", "individual", "marketing"),
    ("CRO Specialist", "individual", "marketing"),
    ("Content Writer", "individual", "marketing"),
    ("UX Designer", "individual", "design"),
    ("Staff Accountant", "individual", "finance"),
    ("Recruiter", "individual", "hr"),
    ("People Partner", "individual", "hr"),
    ("DevOps Engineer", "individual", "engineering"),
    ("SRE", "individual", "engineering"),
    ("Product Owner", "individual", "product"),
    ("Legal Counsel", "individual", "legal"),
    ("Paralegal", "individual", "legal"),
    ("Support Engineer", "individual", "customer_success"),
    ("Sales Engineer", "individual", "sales"),
    ("Salesforce Admin", "individual", "revenue_operations"),
    ("System Administrator", "individual", "it"),
    ("Teacher", "individual", "education"),
    ("Assistant Professor of Economics", "individual", "education"),
    ("Consultant", "individual", None),
    ("Analyst", "individual", None),
    # assistants
    ("Assistant to the VP", "individual", None),
    ("Assistant to the VP of Sales", "individual", "sales"),
    ("Executive Assistant", "individual", None),
    ("Executive Assistant to the CEO", "individual", "executive"),
    ("Marketing Assistant", "individual", "marketing"),
    # interns and students
    ("Marketing Intern", "intern", "marketing"),
    ("Summer Intern - Data Science", "intern", "data"),
    ("Software Engineering Trainee", "intern", "engineering"),
    ("Werkstudent Marketing", "intern", "marketing"),
    ("Working Student, Sales", "intern", "sales"),
    ("Intern to the CEO", "intern", "executive"),
    ("Internship Coordinator", "individual", None),
    ("Student", "student", None),
    ("CS Student", "student", None),
    ("Computer Science Student at MIT", "student", None),
    ("PhD Candidate", "student", None),
    ("PhD Student, Machine Learning", "student", "data"),
    ("Undergraduate", "student", None),
    ("MBA Candidate", "student", None),
    # context: employers, former jobs, nothing recognised
    ("Marketing Manager at Data Corp", "manager", "marketing"),
    ("Marketing Manager @ DataCo", "manager", "marketing"),
    ("Retired CFO", None, None),
    ("Account Executive (ex-CEO)", "individual", "sales"),
    ("Ninja", None, None),
    ("Rockstar", None, None),
    ("", None, None),
    ("   ", None, None),
]


@pytest.mark.parametrize(("title", "seniority", "department"), TITLES)
def test_title_table(title: str, seniority: str | None, department: str | None) -> None:
    info = parse_title(title)
    assert (info.seniority, info.department) == (seniority, department), info.matched


def test_table_is_large_and_covers_every_value() -> None:
    assert len(TITLES) >= 60
    assert {s for _, s, _ in TITLES} >= set(SENIORITIES)
    assert {d for _, _, d in TITLES} >= set(DEPARTMENTS)


def test_none_title() -> None:
    assert parse_title(None) == TitleInfo(None, None, "no title")


def test_vice_president_beats_president() -> None:
    assert parse_title("Vice President").seniority == "vp"
    assert parse_title("President").seniority == "c_level"


def test_matched_explains_the_decision() -> None:
    info = parse_title("V.P. of Sales")
    assert "vp" in info.matched and "sales" in info.matched
    assert "outranks 'vp'" in parse_title("VP Sales Assistant").matched
    assert parse_title("Ninja").matched == "nothing recognised"


def test_case_and_punctuation_do_not_matter() -> None:
    base = parse_title("VP of Sales")
    for variant in ("vp of sales", "V.P. OF SALES", "  VP  of   Sales  ", "VP, Sales", "VP-Sales"):
        info = parse_title(variant)
        assert (info.seniority, info.department) == (base.seniority, base.department), variant


@given(st.text(max_size=200))
def test_never_raises_and_stays_in_vocabulary(title: str) -> None:
    info = parse_title(title)
    assert info.seniority is None or info.seniority in SENIORITIES
    assert info.department is None or info.department in DEPARTMENTS
    assert isinstance(info.matched, str) and info.matched
    if info.department is not None:
        assert info.seniority is not None


@given(st.text(alphabet=string.printable, max_size=120))
def test_ascii_case_insensitive(title: str) -> None:
    lower, upper = parse_title(title.lower()), parse_title(title.upper())
    assert (lower.seniority, lower.department) == (upper.seniority, upper.department)


@given(st.lists(st.sampled_from([t for t, _, _ in TITLES if t.strip()]), max_size=4))
def test_joined_titles_never_raise(parts: list[str]) -> None:
    info = parse_title(" | ".join(parts))
    if parts:
        ranks = {parse_title(p).seniority for p in parts}
        assert info.seniority in ranks

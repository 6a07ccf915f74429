"""The sales desk in a real browser (headless Chromium via Playwright) over a real
`mql serve` on a small demo history: the Leads page's filters, sorting, pages and CSV
export; a sales action done with the keyboard only; a manual correction; the weekly
review; `/docs` rendering with no request leaving the app; and no element overflowing its
card on any page at a phone's, a laptop's and a wide screen's width."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import test_dashboard
from test_dashboard import shot

from support.browser import guarded_tab
from support.localserver import LocalServer, local_server
from support.paths import EXAMPLE

pytestmark = pytest.mark.browser
browser = test_dashboard.browser  # the same Chromium fixture, launched once per module
ADMIN = "desk-admin"
READER = "desk-reader"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    tmp = tmp_path_factory.mktemp("desk")
    db = f"sqlite:///{tmp / 'demo.db'}"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "mqlengine",
            "--database",
            db,
            "demo",
            "--persons",
            "300",
            "--days",
            "60",
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    env = {"MQL_READ_KEYS": READER, "MQL_ADMIN_KEYS": ADMIN}
    with local_server(db, EXAMPLE, log=tmp / "server.log", env=env) as running:
        yield running


@pytest.fixture
def tab(browser: Any, server: LocalServer) -> Iterator[Any]:
    with guarded_tab(browser, server.url, width=1400) as tab:
        yield tab


def log_in(tab: Any, server: LocalServer, key: str) -> Any:
    tab.goto(f"{server.url}/login")
    tab.fill("#login input[name='key']", key)
    tab.click("#login button[type='submit']")
    tab.wait_for_selector("[data-testid='logout']")
    return tab


def cookies(tab: Any) -> dict[str, str]:
    return {c["name"]: c["value"] for c in tab.context.cookies()}


def api(server: LocalServer, path: str, **params: str) -> Any:
    answer = httpx.get(
        f"{server.url}{path}",
        params=params,
        headers={"Authorization": f"Bearer {ADMIN}"},
        timeout=30,
    )
    answer.raise_for_status()
    return answer.json()


def open_mql(server: LocalServer, skip: int = 0) -> int:
    leads = api(server, "/v1/reports/open-mqls", limit="20")["leads"]
    assert len(leads) > skip, "the demo should leave open MQLs"
    return int(leads[skip]["person_id"])


def test_leads_page_filters_sorts_pages_and_exports_every_row(
    tab: Any, server: LocalServer
) -> None:
    page = log_in(tab, server, READER)
    page.goto(f"{server.url}/leads?size=25")
    rows = page.locator("#lead-table tr.lead")
    assert rows.count() == 25
    totals = [float(t) for t in rows.evaluate_all("r => r.map(x => x.dataset.total)")]
    assert totals == sorted(totals, reverse=True)
    matching = int(page.locator("[data-testid='lead-count']").get_attribute("data-matching"))
    assert matching > 25
    page.click("[data-testid='next']")
    page.wait_for_selector("#lead-table")
    assert "page=2" in page.url
    second = [float(t) for t in rows.evaluate_all("r => r.map(x => x.dataset.total)")]
    assert second and max(second) <= min(totals)
    # filters through the form: stage and a score range
    page.select_option("select[name='stage']", "mql")
    page.fill("input[name='score_min']", "50")
    page.click("#lead-filters button[type='submit']")
    page.wait_for_selector("#lead-table")
    shown = page.locator("#lead-table tr.lead")
    assert shown.count() > 0
    for stage, total in shown.evaluate_all("r => r.map(x => [x.dataset.stage, x.dataset.total])"):
        assert stage == "mql" and float(total) >= 50
    filtered = int(page.locator("[data-testid='lead-count']").get_attribute("data-matching"))
    # sorting by MQL date through the column header
    page.click("a[data-sort='mql_at']")
    page.wait_for_selector("#lead-table")
    assert "sort=mql_at" in page.url and "stage=mql" in page.url
    shot(page, "leads")
    # the export streams every matching row, with the same filters
    href = page.locator("[data-testid='export']").get_attribute("href")
    answer = httpx.get(f"{server.url}{href}", cookies=cookies(page), timeout=60)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    exported = list(csv.DictReader(io.StringIO(answer.text)))
    assert len(exported) == filtered
    assert {r["stage"] for r in exported} == {"mql"}
    everything = httpx.get(f"{server.url}/leads.csv", cookies=cookies(page), timeout=60)
    assert len(list(csv.DictReader(io.StringIO(everything.text)))) == matching
    # a bad filter is a 400 naming it
    answer = httpx.get(
        f"{server.url}/leads", params={"score_min": "lots"}, cookies=cookies(page), timeout=30
    )
    assert answer.status_code == 400 and "score_min" in answer.text


def test_keyboard_only_sales_action_shows_in_the_timeline(tab: Any, server: LocalServer) -> None:
    page = log_in(tab, server, ADMIN)
    person = open_mql(server)
    page.goto(f"{server.url}/persons/{person}")
    page.wait_for_selector("[data-testid='score-timeline']")
    for _ in range(120):  # Tab from the top of the page to the action picker
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.dataset.testid") == "action":
            break
    else:
        pytest.fail("the action picker is not reachable with Tab")
    page.keyboard.press("ArrowDown")  # touch → accept
    page.keyboard.press("ArrowDown")  # accept → reject
    assert page.eval_on_selector("[data-testid='action']", "e => e.value") == "reject"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.dataset.testid") == "reason"
    page.keyboard.press("ArrowDown")  # the first reject reason
    reason = page.eval_on_selector("[data-testid='reason']", "e => e.value")
    assert reason
    page.keyboard.press("Tab")  # amount
    page.keyboard.press("Tab")  # the button
    assert page.evaluate("document.activeElement.dataset.testid") == "record-action"
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/persons/{person}#timeline")
    last = page.locator("#timeline tr").last
    assert "nurture" in last.inner_text() and reason in last.inner_text()
    assert "MQL_ADMIN_KEYS#1" in last.inner_text()
    assert page.locator("svg .stage-mark[data-to='nurture']").count() >= 1
    assert page.locator("[data-testid='first-touch']").inner_text() != "—"
    shot(page, "person-after-action")
    audit = api(server, "/v1/audit", action="feedback.reject")
    entries = audit["entries"] if isinstance(audit, dict) else audit
    assert any(e["target"] == f"person:{person}" for e in entries)


def test_forms_need_the_session_csrf_token_and_the_scope(tab: Any, server: LocalServer) -> None:
    person = open_mql(server, 1)
    reader = log_in(tab, server, READER)
    assert reader.locator("#action-form").count() == 0  # a read key sees no actions
    reader.goto(f"{server.url}/persons/{person}")
    assert reader.locator("#action-form").count() == 0
    answer = httpx.post(
        f"{server.url}/persons/{person}/feedback",
        data={"action": "touch"},
        cookies=cookies(reader),
        timeout=30,
    )
    assert answer.status_code == 403
    reader.click("[data-testid='logout']")
    admin = log_in(tab, server, ADMIN)
    for token in ("", "forged"):
        answer = httpx.post(
            f"{server.url}/persons/{person}/feedback",
            data={"action": "touch", "csrf": token},
            cookies=cookies(admin),
            timeout=30,
        )
        assert answer.status_code == 400 and "CSRF" in answer.text


def test_manual_correction_lands_in_history_audit_and_panel(tab: Any, server: LocalServer) -> None:
    page = log_in(tab, server, ADMIN)
    person = open_mql(server, 2)
    page.goto(f"{server.url}/persons/{person}")
    page.select_option("[data-testid='correct-kind']", "stage")
    page.fill("[data-testid='correct-value']", "nurture")
    page.click("[data-testid='correct']")  # the reason is required: the browser refuses
    assert page.url.endswith(f"/persons/{person}")
    page.fill("[data-testid='correct-reason']", "duplicate of a customer's contact")
    page.click("[data-testid='correct']")
    page.wait_for_url(f"**/persons/{person}#timeline")
    last = page.locator("#timeline tr").last
    assert "manual" in last.inner_text() and "duplicate of a customer" in last.inner_text()
    assert page.locator("svg .stage-mark.manual").count() >= 1
    audit = api(server, "/v1/audit", action="correction.stage")
    entries = audit["entries"] if isinstance(audit, dict) else audit
    assert any(e["target"] == f"person:{person}" for e in entries)
    page.goto(f"{server.url}/review")
    manual = page.locator("#corrections-report td[data-metric='manual']").first.inner_text()
    assert int(manual) >= 1
    assert "duplicate of a customer" in page.locator("#recent-corrections").inner_text()


def test_weekly_review_sample_mark_and_report(tab: Any, server: LocalServer) -> None:
    page = log_in(tab, server, ADMIN)
    page.goto(f"{server.url}/review")
    page.fill("#sample-form input[name='n']", "6")
    page.fill("#sample-form input[name='seed']", "7")
    page.click("#sample-form button[type='submit']")
    page.wait_for_load_state()
    assert page.locator("[data-testid='error']").count() == 0, page.content()[-800:]
    page.wait_for_selector(".review-item")
    items = page.locator(".review-item")
    assert 1 <= items.count() <= 6
    first = items.first
    first.locator("input[value='wrong']").check()
    first.locator("textarea[name='note']").fill("fit too generous for a student")
    first.locator("button[type='submit']").click()
    page.wait_for_selector(".review-item[data-verdict='wrong']")
    shot(page, "review-sample")
    page.goto(f"{server.url}/review")
    share = page.locator("#review-report td[data-value]").first.get_attribute("data-value")
    assert share and 0 < float(share) <= 1


def test_docs_render_offline(tab: Any, server: LocalServer) -> None:
    answer = tab.goto(f"{server.url}/docs")
    assert answer is not None and answer.status == 200
    tab.wait_for_selector(".opblock", timeout=30_000)
    assert tab.locator(".opblock").count() >= 20
    assert "/v1/batch" in tab.content()
    shot(tab, "docs")


PAGES = ("/", "/leads", "/cohorts", "/channels", "/reps", "/review", "/definition")
OVERFLOW = """(strict) => {
  const bad = [];
  for (const card of document.querySelectorAll('.card')) {
    const box = card.getBoundingClientRect();
    for (const el of card.querySelectorAll('*')) {
      const box_of = el.parentElement && el.parentElement.closest('.table-wrap, table, svg');
      if (box_of && card.contains(box_of)) continue;  // inside a scroll box or a chart
      const r = el.getBoundingClientRect();
      if (!r.width || !r.height) continue;
      if (r.right > box.right + 1 || r.left < box.left - 1) {
        bad.push(`${el.tagName}.${el.className} ${Math.round(r.right - box.right)}px`);
      }
    }
    for (const wrap of card.querySelectorAll('.table-wrap, table')) {
      if (strict && wrap.scrollWidth > wrap.clientWidth + 1) {
        bad.push(`table scrolls ${wrap.scrollWidth - wrap.clientWidth}px: ${wrap.innerText.slice(0, 40)}`);
      }
    }
  }
  if (document.documentElement.scrollWidth > window.innerWidth + 1) bad.push('page scrolls sideways');
  return bad;
}"""


@pytest.mark.parametrize("width", [390, 1400, 1920])
def test_no_element_overflows_its_card(browser: Any, server: LocalServer, width: int) -> None:
    """At desktop widths tables fit their cards outright; on a phone a wide table may
    scroll inside its card, but nothing sticks out of one."""
    context = browser.new_context(viewport={"width": width, "height": 900})
    try:
        page = log_in(context.new_page(), server, ADMIN)
        person = open_mql(server, 3)
        problems: dict[str, list[str]] = {}
        for path in (*PAGES, f"/persons/{person}"):
            page.goto(f"{server.url}{path}")
            page.wait_for_load_state("load")
            found = page.evaluate(OVERFLOW, width >= 1280)
            if found:
                problems[path] = found[:5]
                shot(page, f"overflow-{width}-{path.strip('/').replace('/', '-') or 'overview'}")
        assert problems == {}, problems
    finally:
        context.close()

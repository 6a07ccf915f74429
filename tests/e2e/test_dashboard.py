"""The dashboard in a real browser: Debian's Chromium driven by Playwright (headless).

A small `mql demo` history is served by a real `mql serve`; the tests log in through the
form (a read key once, then a session cookie), check logging in and out, that the
overview shows the API's numbers, that filters change them, that the person page's score
breakdown adds up, and that every asset comes from the app (no network). Screenshots go to
test-artifacts/.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.browser import guarded_tab
from support.localserver import LocalServer, local_server
from support.paths import EXAMPLE, ROOT

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    tmp = tmp_path_factory.mktemp("dashboard")
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
            "400",
            "--days",
            "90",
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    with local_server(
        db, EXAMPLE, log=tmp / "server.log", env={"MQL_READ_KEYS": "reader"}
    ) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        message = "Chromium is not installed (scripts/system-deps.sh installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI must never pass by skipping the browser tests
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def tab(browser: Any, server: LocalServer) -> Iterator[Any]:
    """A fresh browser tab, not logged in."""
    with guarded_tab(browser, server.url, width=1440) as tab:
        yield tab


def log_in(tab: Any, server: LocalServer, key: str) -> None:
    tab.fill("#login input[name='key']", key)
    tab.click("#login button[type='submit']")
    tab.wait_for_load_state()


@pytest.fixture
def page(tab: Any, server: LocalServer) -> Any:
    """A tab logged in with the read key through the login form."""
    tab.goto(f"{server.url}/login")
    log_in(tab, server, "reader")
    tab.wait_for_selector("[data-testid='logout']")
    return tab


def session_cookie(page: Any) -> str:
    (cookie,) = [c for c in page.context.cookies() if c["name"] == "mql_session"]
    return str(cookie["value"])


def api(server: LocalServer, path: str, **params: str) -> Any:
    response = httpx.get(
        f"{server.url}{path}", params=params, headers={"Authorization": "Bearer reader"}, timeout=30
    )
    response.raise_for_status()
    return response.json()


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def metric(page: Any, name: str) -> str:
    return str(page.locator(f"[data-metric='{name}']").first.get_attribute("data-value"))


def close(shown: str, expected: Any) -> bool:
    if expected is None:
        return shown in ("", "None")
    return abs(float(shown) - float(expected)) < 1e-6


def test_overview_matches_the_api_and_filters_change_it(page: Any, server: LocalServer) -> None:
    page.goto(f"{server.url}/")
    page.wait_for_selector("html[data-charts='ready']")
    overview = api(server, "/v1/reports/overview")
    funnel = overview["funnel"]
    for name in (
        "new_leads",
        "mqls",
        "mql_rate",
        "acceptance_rate",
        "mql_to_sql",
        "mql_to_customer",
        "cost_per_mql",
    ):
        assert close(metric(page, name), funnel[name]), name
    assert close(metric(page, "sla_compliance"), overview["sla"]["sla_compliance"])
    assert funnel["mqls"] > 0 and funnel["spend"] > 0
    # Funnel steps: the table shows the API's counts.
    for step in overview["steps"]:
        cell = page.locator(f"tr[data-step='{step['step']}'] td[data-value]")
        assert close(cell.get_attribute("data-value") or "", step["count"]), step["step"]
    assert page.locator("canvas[data-chart='chart-volume']").bounding_box()["height"] > 100
    shot(page, "overview")

    # Filter by channel through the form: the numbers change and match the filtered API.
    channel = overview["volume"]["series"][0]["key"]
    page.select_option("select[name='channel']", channel)
    page.click("#filters button[type='submit']")
    page.wait_for_selector("html[data-charts='ready']")
    assert f"channel={channel}" in page.url
    filtered = api(server, "/v1/reports/overview", channel=channel)["funnel"]
    assert close(metric(page, "mqls"), filtered["mqls"])
    assert close(metric(page, "new_leads"), filtered["new_leads"])
    assert filtered["mqls"] < funnel["mqls"]

    # A period filter too.
    since = overview["volume"]["buckets"][len(overview["volume"]["buckets"]) // 2]
    page.fill("input[name='since']", since)
    page.click("#filters button[type='submit']")
    page.wait_for_selector("html[data-charts='ready']")
    period = api(server, "/v1/reports/overview", channel=channel, since=since)["funnel"]
    assert close(metric(page, "mqls"), period["mqls"])
    assert period["mqls"] <= filtered["mqls"]
    shot(page, "overview-filtered")


def test_pages_and_links(page: Any, server: LocalServer) -> None:
    page.goto(f"{server.url}/cohorts")
    page.wait_for_selector("html[data-charts='ready']")
    cohorts = api(server, "/v1/reports/cohorts")["rows"]
    shown = page.locator("#cohort-table tr[data-key]").count()
    assert shown == len(cohorts)
    shot(page, "cohorts")
    page.click("text=Channels & campaigns")
    page.wait_for_selector("html[data-charts='ready']")
    assert page.locator("#channel-table tr[data-key]").count() >= 3
    shot(page, "channels")
    page.click("text=Reps & queues")
    page.wait_for_selector("#open-mqls")
    shot(page, "reps")
    link = page.locator("#open-mqls a").first
    if link.count():
        link.click()
        page.wait_for_selector("#score-card")
    page.click("text=Definition")
    page.wait_for_selector("text=Intent rules")
    assert "2026-11-b2b-v1" in page.content()
    shot(page, "definition")


def test_person_score_breakdown_adds_up(page: Any, server: LocalServer) -> None:
    leads = api(server, "/v1/reports/open-mqls", limit="5")["leads"]
    assert leads, "the demo should leave open MQLs"
    person_id = leads[0]["person_id"]
    page.goto(f"{server.url}/persons/{person_id}")
    card = page.locator("#score-card")
    total = float(card.get_attribute("data-total") or "nan")
    points = [
        float(v)
        for v in page.locator("#contributions td.points").evaluate_all(
            "cells => cells.map(c => c.getAttribute('data-points'))"
        )
    ]
    assert points, "a qualified lead has contributions"
    assert sum(points) == pytest.approx(total, abs=0.01)
    assert page.locator("#timeline tr").count() >= 2  # header + the MQL entry at least
    assert page.locator("#events tr").count() >= 2
    shot(page, "person")


def test_unauthorised_page_asks_for_a_key(tab: Any, server: LocalServer) -> None:
    answer = tab.goto(f"{server.url}/reps")
    assert answer.status == 401
    assert tab.locator("#login input[name='key']").count() == 1
    # a key in the URL is not accepted anywhere
    assert tab.goto(f"{server.url}/reps?key=reader").status == 401


def test_login_and_logout(tab: Any, server: LocalServer) -> None:
    tab.goto(f"{server.url}/channels?channel=email")
    log_in(tab, server, "not-a-key")
    assert (
        "unknown, expired or revoked key" in tab.locator("[data-testid='login-error']").inner_text()
    )
    log_in(tab, server, server.write_key)  # the public write key opens nothing
    assert "lacks the 'read' scope" in tab.locator("[data-testid='login-error']").inner_text()
    log_in(tab, server, "reader")
    tab.wait_for_selector("html[data-charts='ready']")
    assert tab.url == f"{server.url}/channels?channel=email"  # back where the visit began
    assert tab.locator("[data-testid='who']").inner_text() == "MQL_READ_KEYS#1"
    (cookie,) = [c for c in tab.context.cookies() if c["name"] == "mql_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and not cookie["secure"]
    assert "reader" not in cookie["value"]  # a signed session id, never the key
    assert tab.evaluate("document.cookie") == ""  # scripts cannot read it
    shot(tab, "logged-in")
    stolen = {"mql_session": cookie["value"]}
    assert httpx.get(f"{server.url}/reps", cookies=stolen, timeout=30).status_code == 200
    tab.click("[data-testid='logout']")
    tab.wait_for_selector("#login")
    assert tab.url == f"{server.url}/login"
    assert not [c for c in tab.context.cookies() if c["name"] == "mql_session"]
    # the session ended on the server: a copy of the cookie opens nothing either
    assert httpx.get(f"{server.url}/reps", cookies=stolen, timeout=30).status_code == 401
    assert tab.goto(f"{server.url}/").status == 401


def test_find_box_opens_a_person_by_email(page: Any, server: LocalServer) -> None:
    lead = api(server, "/v1/reports/open-mqls", limit="1")["leads"][0]
    assert lead["email"], "demo MQLs have an e-mail address"
    page.goto(f"{server.url}/reps")
    page.fill("[data-testid='find']", lead["email"].upper())
    page.press("[data-testid='find']", "Enter")
    page.wait_for_selector("#score-card")
    assert page.url.endswith(f"/persons/{lead['person_id']}")
    page.fill("[data-testid='find']", "nobody@nowhere.example")
    page.press("[data-testid='find']", "Enter")
    page.wait_for_selector("[data-testid='error']")
    assert "no person has email 'nobody@nowhere.example'" in page.content()
    shot(page, "find-missing")
    session = {"mql_session": session_cookie(page)}
    for params, cookies, status in (
        ({"q": "nobody@nowhere.example"}, session, 404),
        ({"q": " "}, session, 400),
        ({"q": "nobody@nowhere.example"}, {}, 401),
        ({"q": "nobody@nowhere.example", "key": "reader"}, {}, 401),
    ):
        answer = httpx.get(f"{server.url}/find", params=params, cookies=cookies, timeout=30)
        assert answer.status_code == status, (params, answer.status_code)


def test_unknown_figures_show_a_dash_and_the_reason(page: Any, server: LocalServer) -> None:
    rows = api(server, "/v1/reports/channels", by="channel")["rows"]
    unknown = [r for r in rows if r["cost_per_mql"] is None]
    assert unknown, "the demo has channels without spend"
    page.goto(f"{server.url}/channels?key=reader")
    page.wait_for_selector("html[data-charts='ready']")
    for row in unknown:
        cell = page.locator(
            f"#channel-table tr[data-key='{row['key']}'] td[data-metric='cost_per_mql']"
        )
        assert cell.inner_text().strip() == "—", row["key"]
    notes = page.locator("[data-testid='notes']").first.inner_text()
    assert f"cost per mql ({unknown[0]['key']}" in notes
    assert row["notes"]["cost_per_mql"] in notes
    shot(page, "channels-notes")
    # a bad breakdown is refused like the API refuses it
    response = page.goto(f"{server.url}/channels?by=colour")
    assert response is not None and response.status == 400
    assert "unknown breakdown" in page.content()
    api_answer = httpx.get(
        f"{server.url}/v1/reports/channels",
        params={"by": "colour"},
        headers={"Authorization": "Bearer reader"},
        timeout=30,
    )
    assert api_answer.status_code == 400

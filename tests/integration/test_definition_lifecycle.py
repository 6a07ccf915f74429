"""`mql definition apply|list|show|diff|rollback` on a real SQLite file: apply refuses
failing tests and a missing confirmation, the live version is what scores after apply and
rollback, and a mql.yaml that differs from it only warns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mqlengine.cli.app import app
from support.clock import NOW

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MQL_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("MQL_CLOCK", NOW.isoformat())
    monkeypatch.delenv("MQL_DEFINITION", raising=False)
    assert mql("init")[0] == 0
    assert mql("score")[0] == 0  # the file becomes the first stored version, as before
    return tmp_path


def mql(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def candidate(env: Path, version: str, threshold: int = 90) -> Path:
    text = (env / "mql.yaml").read_text()
    text = text.replace('version: "2026-11-b2b-v1"', f'version: "{version}"', 1)
    text = text.replace("  threshold: 70", f"  threshold: {threshold}", 1)
    path = env / f"{version}.yaml"
    path.write_text(text)
    return path


def versions() -> list[dict[str, object]]:
    code, out = mql("definition", "list", "--json")
    assert code == 0, out
    rows: list[dict[str, object]] = json.loads(out)
    return rows


def test_apply_refuses_a_definition_whose_tests_fail(env: Path) -> None:
    path = candidate(env, "v2")
    # a threshold no example lead reaches: the hand-raiser test still passes (it bypasses
    # the threshold), the score-qualified examples do not
    path.write_text(path.read_text().replace("  threshold: 90", "  threshold: 150", 1))
    code, out = mql("definition", "apply", str(path), "--yes")
    assert code == 3 and "definition test(s) fail: v2 is not applied" in out
    assert "v2.yaml: test" in out
    assert [v["version"] for v in versions()] == ["2026-11-b2b-v1"]


def test_apply_without_a_terminal_needs_yes(env: Path) -> None:
    code, out = mql("definition", "apply", str(candidate(env, "v2")), "--days", "2")
    assert code == 2 and "pass --yes" in out
    assert "leads whose stage would change now" in out  # the preview ran first
    assert [v["version"] for v in versions()] == ["2026-11-b2b-v1"]


def test_apply_list_show_diff_rollback_and_what_scores(env: Path) -> None:
    path = candidate(env, "v2")
    code, out = mql(
        "definition",
        "apply",
        str(path),
        "--yes",
        "-m",
        "fewer MQLs",
        "--author",
        "alice",
        "--days",
        "3",
    )
    assert code == 0, out
    assert "threshold: 70 → 90" in out and "applied v2" in out and "mql score" in out
    rows = versions()
    assert [(v["version"], v["live"]) for v in rows] == [("v2", True), ("2026-11-b2b-v1", False)]
    assert rows[0]["author"] == "alice" and rows[0]["message"] == "fewer MQLs"
    code, out = mql("definition", "apply", str(path), "--yes")
    assert code == 6 and "already the live version" in out

    # mql.yaml (still v1) is not made live: the live version scores, with a warning
    code, out = mql("score")
    assert code == 0 and "with v2 on duckdb" in out
    assert "mql.yaml differs from live version v2" in out and "mql definition apply" in out

    code, out = mql("definition", "show", "v2")
    assert code == 0 and "threshold: 90" in out and "v2 (live)" in out and "alice" in out
    code, out = mql("definition", "diff", "2026-11-b2b-v1", "v2")
    assert code == 0 and "threshold: 70 → 90" in out
    assert '-version: "2026-11-b2b-v1"' in out and "+  threshold: 90" in out
    code, out = mql("definition", "diff", "2026-11-b2b-v1", "v2", "--json")
    assert json.loads(out)["changes"] == [
        {"what": "threshold", "change": "threshold", "before": 70.0, "after": 90.0}
    ]
    code, out = mql("definition", "show", "v9")
    assert code == 5 and "no stored definition version 'v9'" in out

    code, out = mql("definition", "rollback", "2026-11-b2b-v1", "--yes")
    assert code == 0 and "rolled back to 2026-11-b2b-v1" in out
    code, out = mql("score")
    assert code == 0 and "with 2026-11-b2b-v1 on duckdb" in out and "differs" not in out
    code, out = mql("audit", "--json")
    actions = [json.loads(line)["action"] for line in out.splitlines() if line.strip()]
    assert "definition.apply" in actions and "definition.rollback" in actions


def test_a_reused_version_name_is_refused_before_the_preview(env: Path) -> None:
    path = candidate(env, "2026-11-b2b-v1")  # same name, other threshold
    code, out = mql("definition", "apply", str(path), "--yes")
    assert code == 3 and "already stored with different content" in out


def test_dashboard_lists_versions_and_diffs_two(env: Path) -> None:
    import httpx

    from support.localserver import local_server

    code, out = mql(
        "definition",
        "apply",
        str(candidate(env, "v2")),
        "--yes",
        "--author",
        "alice",
        "-m",
        "fewer MQLs",
        "--days",
        "1",
    )
    assert code == 0, out
    url = f"sqlite:///{env / 'cli.db'}"
    with (
        local_server(url, env / "mql.yaml", log=env / "server.log") as server,
        httpx.Client(base_url=server.url) as browser,
    ):
        assert browser.get("/definition/versions").status_code == 401
        assert browser.post("/login", data={"key": server.read_key}).status_code == 303
        page = browser.get("/definition/versions")
        assert page.status_code == 200
        assert 'v2 <span class="pill met">live</span>' in page.text
        assert "alice" in page.text and "fewer MQLs" in page.text
        assert "threshold: 70 → 90" in page.text and "+  threshold: 90" in page.text
        assert browser.get("/definition/versions", params={"before": "v9"}).status_code == 404
        assert "/definition/versions" in browser.get("/definition").text

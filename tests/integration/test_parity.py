"""One path for every decision: the same messages give the same profiles, score cards and
stage decisions whichever way they come in.

Paths: ``POST /v1/batch`` on a real ``mql serve`` process, ``mql import`` of a JSONL file
and of two CSV files (persons, events), the demo's replay loop, and an identity merge undone
with ``mql unmerge``; each with and without a firmographics CSV (``MQL_FIRMOGRAPHICS_CSV``),
all with the engine's clock frozen (``MQL_CLOCK``) so "now" is the same everywhere.

Real-time ingest scores at arrival and imports score as of each person's newest event, by
design; so the score cards compared are the ones each store gives *as of one moment*
(``person_detail``), and stage decisions are compared as their sequence (from, to, reason,
MQL type) without times. A new entry point joins this test.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from mqlengine.cli.app import app
from mqlengine.demo.generator import DemoDataset
from mqlengine.demo.run import run_demo
from mqlengine.domain.explain import card_to_dict
from mqlengine.ingest.importer import content_message_id
from mqlengine.services.leads import person_detail
from mqlengine.settings import Settings
from mqlengine.store.db import Database
from mqlengine.store.tables import identities, merges, persons, stage_history
from mqlengine.wiring import Wiring
from support.clock import NOW
from support.localserver import local_server
from support.paths import EXAMPLE

FIRMOGRAPHICS = (
    "domain,company,industry,employees,country\n"
    "acme.com,Acme Corp,software,1200,US\n"
    "beta.io,Beta Labs,fintech,90,GB\n"
)


def _at(minutes_before: int) -> str:
    return (NOW - timedelta(minutes=minutes_before)).isoformat().replace("+00:00", "Z")


def _identify(user_id: str, minutes: int, **traits: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "type": "identify",
        "userId": user_id,
        "traits": traits,
        "timestamp": _at(minutes),
    }
    message["messageId"] = "csv-" + content_message_id(message)  # as the persons CSV names it
    return message


def _track(
    event: str,
    minutes: int,
    *,
    user_id: str | None = None,
    anonymous_id: str | None = None,
    **properties: Any,
) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "track", "event": event, "properties": properties}
    if user_id:
        message["userId"] = user_id
    if anonymous_id:
        message["anonymousId"] = anonymous_id
    message["timestamp"] = _at(minutes)
    message["messageId"] = f"m-{event.replace(' ', '')}-{user_id or anonymous_id}-{minutes}"
    return message


# Persons: a VP at a company the firmographics file knows (fit comes from it), a manager at
# another known company, a student on a free mailbox (excluded), an anonymous visitor who is
# later tied to a known person (a merge), and a CEO on a disposable address (flagged).
IDENTIFIES = [
    _identify("u-ada", 55, email="ada@acme.com", title="VP Marketing", country="US"),
    _identify("u-bo", 54, email="bo@beta.io", title="Marketing Manager"),
    _identify("u-cy", 53, email="cy@gmail.com", title="Student", seniority="student"),
    _identify("u-dee", 52, email="dee@acme.com", title="Head of Growth"),
    _identify("u-eve", 51, email="eve@mailinator.com", title="CEO", country="US"),
]
TRACKS = [
    _track("Page Viewed", 50, user_id="u-ada", path="/pricing"),
    _track("Demo Requested", 45, user_id="u-ada"),
    _track("Webinar Attended", 44, user_id="u-bo"),
    _track("Content Downloaded", 43, user_id="u-bo", asset="guide"),
    _track("Demo Requested", 42, user_id="u-cy"),
    _track("Page Viewed", 41, anonymous_id="anon-x", path="/pricing"),
    _track("Trial Started", 40, anonymous_id="anon-x"),
    _track("Page Viewed", 39, user_id="u-dee", path="/blog/scoring"),
    _track("Demo Requested", 38, user_id="u-eve"),
]
# Ties the anonymous visitor to u-dee: two known persons become one. It scores nothing, so
# undoing the merge must give back exactly the two persons that existed before it.
MERGING = _track("Email Link Clicked", 30, user_id="u-dee", anonymous_id="anon-x")
MERGING["event"] = "Newsletter Opened"
MESSAGES = [*IDENTIFIES, *TRACKS, MERGING]


def _write_jsonl(path: Path, messages: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(m) + b"\n" for m in messages))
    return path


def _write_csvs(folder: Path, messages: list[dict[str, Any]]) -> tuple[Path, Path]:
    """The same messages as a CRM would export them: a persons CSV and an events CSV."""
    people = folder / "persons.csv"
    with people.open("w", newline="", encoding="utf-8") as handle:
        fields = ["user_id", "timestamp", "email", "title", "country", "seniority"]
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for m in messages:
            if m["type"] == "identify":
                writer.writerow(
                    {"user_id": m["userId"], "timestamp": m["timestamp"], **m["traits"]}
                )
    activity = folder / "events.csv"
    with activity.open("w", newline="", encoding="utf-8") as handle:
        fields = ["message_id", "user_id", "anonymous_id", "event", "timestamp", "path", "asset"]
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for m in messages:
            if m["type"] == "track":
                writer.writerow(
                    {
                        "message_id": m["messageId"],
                        "user_id": m.get("userId", ""),
                        "anonymous_id": m.get("anonymousId", ""),
                        "event": m["event"],
                        "timestamp": m["timestamp"],
                        **m["properties"],
                    }
                )
    return people, activity


def snapshot(database_url: str, definition: Path = EXAMPLE) -> dict[str, dict[str, Any]]:
    """Every live person, keyed by its identities: profile, flags, stage, the score card as
    of NOW (with a live model: its likelihood, version and top contributions), and its
    stage decisions (without times)."""
    wiring = Wiring(Settings(database_url=database_url, definition_path=definition), create=False)
    definition = wiring.definition().definition
    found: dict[str, dict[str, Any]] = {}
    with wiring.db.read() as connection:
        live = connection.execute(
            select(persons.c.id, persons.c.profile, persons.c.flags, persons.c.stage).where(
                persons.c.merged_into.is_(None)
            )
        ).all()
        for row in live:
            keys = sorted(
                f"{r.kind}:{r.value}"
                for r in connection.execute(
                    select(identities.c.kind, identities.c.value).where(
                        identities.c.person_id == row.id
                    )
                )
            )
            card = card_to_dict(person_detail(connection, definition, row.id, as_of=NOW).card)
            decisions = [
                (h.from_stage, h.to_stage, h.reason, h.mql_type)
                for h in connection.execute(
                    select(stage_history)
                    .where(stage_history.c.person_id == row.id)
                    .order_by(stage_history.c.id)
                )
            ]
            found[" ".join(keys)] = {
                "profile": row.profile,
                "flags": sorted(row.flags or []),
                "stage": row.stage,
                "card": card,
                "decisions": decisions,
            }
    wiring.close()
    return found


def _mql(*args: str, env: dict[str, str]) -> str:
    result = CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(params=["plain", "firmographics"])
def settings_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {"MQL_CLOCK": NOW.isoformat(), "MQL_DEFINITION": str(EXAMPLE)}
    if request.param == "firmographics":
        csv_path = tmp_path / "firmographics.csv"
        csv_path.write_text(FIRMOGRAPHICS, encoding="utf-8")
        env["MQL_FIRMOGRAPHICS_CSV"] = str(csv_path)
    else:
        env["MQL_FIRMOGRAPHICS_CSV"] = ""
    yield env


Prepare = Callable[[str], None]


def _nothing(url: str) -> None:
    return None


def _via_api(
    tmp_path: Path, env: dict[str, str], messages: list[dict[str, Any]], prepare: Prepare = _nothing
) -> str:
    url = f"sqlite:///{tmp_path / 'api.db'}"
    prepare(url)
    definition = Path(env.get("MQL_DEFINITION") or EXAMPLE)
    with local_server(url, definition, log=tmp_path / "api.log", env=env) as server:
        response = httpx.post(
            f"{server.url}/v1/batch",
            json={"batch": messages},
            auth=(server.write_key, ""),
            timeout=30,
        )
        assert response.status_code == 200, response.text
        assert not response.json().get("rejected"), response.text
    return url


def _via_jsonl(
    tmp_path: Path, env: dict[str, str], messages: list[dict[str, Any]], prepare: Prepare = _nothing
) -> str:
    url = f"sqlite:///{tmp_path / 'jsonl.db'}"
    prepare(url)
    source = _write_jsonl(tmp_path / "messages.jsonl", messages)
    out = _mql("--database", url, "import", str(source), env=env)
    assert f"{len(messages)} rows: {len(messages)} loaded" in out
    return url


def _via_csv(
    tmp_path: Path, env: dict[str, str], messages: list[dict[str, Any]], prepare: Prepare = _nothing
) -> str:
    url = f"sqlite:///{tmp_path / 'csv.db'}"
    prepare(url)
    people, activity = _write_csvs(tmp_path, messages)
    _mql("--database", url, "import", str(people), "--kind", "persons", env=env)
    _mql("--database", url, "import", str(activity), "--kind", "events", env=env)
    return url


def _via_demo(
    tmp_path: Path, env: dict[str, str], messages: list[dict[str, Any]], prepare: Prepare = _nothing
) -> str:
    """The demo's replay loop (day batches, nightly rescoring, a sales team) on our messages,
    under the definition in force (the example one unless ``MQL_DEFINITION`` names another)."""
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    prepare(url)
    settings = Settings.from_env({**env, "MQL_DATABASE_URL": url})
    wiring = Wiring(settings)
    dataset = DemoDataset(messages=messages, sales_plans={}, spend=[], channels=())
    loaded = wiring.definition() if env.get("MQL_DEFINITION") != str(EXAMPLE) else None
    run_demo(wiring, now=NOW, days=1, dataset=dataset, loaded=loaded)
    wiring.close()
    return url


def _merged_then_undone(tmp_path: Path, env: dict[str, str], prepare: Prepare | None = None) -> str:
    """Every message (the merging one included) imported into a new store, then its one
    merge undone with `mql unmerge` (which rescores both persons); the store's URL."""
    merged_url = f"sqlite:///{tmp_path / 'merged.db'}"
    if prepare is not None:
        prepare(merged_url)
    _mql(
        "--database",
        merged_url,
        "import",
        str(_write_jsonl(tmp_path / "m.jsonl", MESSAGES)),
        env=env,
    )
    database = Database(merged_url)
    with database.read() as connection:
        merge_id = connection.execute(select(merges.c.id)).scalar_one()
    database.dispose()
    out = _mql("--database", merged_url, "unmerge", str(merge_id), env=env)
    assert "both rescored" in out
    return merged_url


def test_every_entry_point_decides_alike(tmp_path: Path, settings_env: dict[str, str]) -> None:
    env = {**os.environ, **settings_env}
    reference = snapshot(_via_api(tmp_path, env, MESSAGES))
    assert len(reference) == 5  # u-dee and anon-x were merged
    ada = reference["email:ada@acme.com user_id:u-ada"]
    assert ada["stage"] == "mql"
    if settings_env["MQL_FIRMOGRAPHICS_CSV"]:
        assert ada["profile"]["company"]["employees"] == 1200  # the CSV's facts are used
    else:
        assert "employees" not in ada["profile"].get("company", {})
    for path in (_via_jsonl, _via_csv, _via_demo):
        assert snapshot(path(tmp_path, env, MESSAGES)) == reference, path.__name__


def test_undone_merge_gives_back_the_persons_as_if_never_merged(
    tmp_path: Path, settings_env: dict[str, str]
) -> None:
    env = {**os.environ, **settings_env}
    separate = [m for m in MESSAGES if m is not MERGING]
    expected = snapshot(_via_jsonl(tmp_path, env, separate))
    merged_url = _merged_then_undone(tmp_path, env)
    after = snapshot(merged_url)
    # The merging event itself stays with u-dee (it named u-dee); it scores nothing.
    assert after.keys() == expected.keys()
    for key, person in expected.items():
        got = after[key]
        assert got["profile"] == person["profile"], key
        assert got["card"] == person["card"], key
        assert got["stage"] == person["stage"], key


def test_python_facade_decides_like_the_cli(tmp_path: Path, settings_env: dict[str, str]) -> None:
    import mqlengine

    reference = snapshot(_via_jsonl(tmp_path, {**os.environ, **settings_env}, MESSAGES))
    url = f"sqlite:///{tmp_path / 'facade.db'}"
    firmographics = settings_env["MQL_FIRMOGRAPHICS_CSV"] or None
    with mqlengine.open(
        url, definition=EXAMPLE, firmographics=firmographics, clock=lambda: NOW
    ) as eng:
        result = eng.ingest(MESSAGES, replay=True)
        assert result.accepted == len(MESSAGES) and not result.rejected
        detail = eng.explain("ada@acme.com")
        assert detail.person["stage"] == "mql"
        funnel = eng.report("funnel")
        assert funnel["rows"][0]["mqls"] >= 1
    assert snapshot(url) == reference


def test_console_script_reads_the_same_settings(tmp_path: Path) -> None:
    """``MQL_CLOCK`` and ``MQL_FIRMOGRAPHICS_CSV`` reach a real ``mql`` process too."""
    csv_path = tmp_path / "firmographics.csv"
    csv_path.write_text(FIRMOGRAPHICS, encoding="utf-8")
    source = _write_jsonl(tmp_path / "messages.jsonl", MESSAGES)
    url = f"sqlite:///{tmp_path / 'process.db'}"
    env = {
        **os.environ,
        "MQL_CLOCK": NOW.isoformat(),
        "MQL_FIRMOGRAPHICS_CSV": str(csv_path),
        "MQL_DEFINITION": str(EXAMPLE),
    }
    exe = Path(sys.executable).with_name("mql")
    done = subprocess.run(
        [str(exe), "--database", url, "import", str(source)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    ada = snapshot(url)["email:ada@acme.com user_id:u-ada"]
    assert ada["profile"]["company"]["employees"] == 1200


# -- with a live model ---------------------------------------------------------------------

# The example definition with the likelihood deciding: a lead the model finds likely enough
# is an MQL of its own type (fit and gates still apply), and none below 0.4 is one at all.
PREDICTED_PATH = """  paths:
    - type: predicted
      when: {likelihood_at_least: 0.45}
      bypass_threshold: true
"""
PREDICT = """
predict:
  label: {reached: opportunity, within_days: 30, from: mql}
  min_rows: 40
  traits: [seniority]
"""
TRAINING_TITLES = {  # title → reached an opportunity within 30 days of its MQL
    "VP Marketing": True,
    "CEO": True,
    "Marketing Manager": False,
    "Head of Growth": False,
    "Marketing Intern": False,
}


def _predict_definition(folder: Path) -> Path:
    text = EXAMPLE.read_text(encoding="utf-8")
    text = text.replace('version: "2026-11-b2b-v1"', 'version: "parity-likelihood"')
    text = text.replace("  paths:\n", PREDICTED_PATH, 1)
    text = text.replace(
        "  default_type: engagement\n", "  default_type: engagement\n  min_likelihood: 0.4\n"
    )
    path = folder / "mql-likelihood.yaml"
    path.write_text(text + PREDICT, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def live_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """A model trained on a store of 80 earlier leads, where VPs and CEOs reached an
    opportunity and managers, heads and interns did not; its artifact and definition."""
    from mqlengine.predict.modeling import fit_best
    from mqlengine.predict.trainset import build_trainset

    folder = tmp_path_factory.mktemp("trained")
    definition_path = _predict_definition(folder)
    url = f"sqlite:///{folder / 'trained.db'}"
    env = {
        **os.environ,
        "MQL_CLOCK": NOW.isoformat(),
        "MQL_DEFINITION": str(definition_path),
        "MQL_FIRMOGRAPHICS_CSV": "",
    }
    start = NOW - timedelta(days=150)
    messages, history = [], ["email,created_at,mql_at,opportunity_at"]
    titles = list(TRAINING_TITLES)
    for n in range(80):
        title = titles[n % len(titles)]
        at = start + timedelta(hours=5 * n)
        email = f"t{n}@trained{n}.example"
        messages.append(
            {
                "type": "identify",
                "messageId": f"train-{n}",
                "userId": f"t-{n}",
                "timestamp": at.isoformat(),
                "traits": {"email": email, "title": title},
            }
        )
        mql_at = at + timedelta(days=1)
        won = (mql_at + timedelta(days=10)).date().isoformat() if TRAINING_TITLES[title] else ""
        history.append(f"{email},{at.date()},{mql_at.date()},{won}")
    _mql("--database", url, "import", str(_write_jsonl(folder / "t.jsonl", messages)), env=env)
    (folder / "h.csv").write_text("\n".join(history) + "\n", encoding="utf-8")
    _mql("--database", url, "history", "import", str(folder / "h.csv"), env=env)
    wiring = Wiring(Settings(database_url=url, definition_path=definition_path), create=False)
    definition = wiring.definition().definition
    with wiring.db.read() as connection:
        trainset = build_trainset(connection, definition, now=NOW)
    wiring.close()
    assert len(trainset.labels) == 80 and trainset.positives == 32
    model = fit_best(trainset.frame(), trainset.y(), seed=0, max_trials=1)
    return definition_path, model.to_bytes()


def _promoting(definition_path: Path, artifact: bytes) -> Prepare:
    """Creates the store and makes the trained model live in it, before anything arrives."""

    def prepare(url: str) -> None:
        from mqlengine.predict import registry
        from mqlengine.predict.modeling import FittedModel

        wiring = Wiring(Settings(database_url=url, definition_path=definition_path))
        with wiring.db.begin() as connection:
            entry = registry.register(
                connection,
                FittedModel.from_bytes(artifact),
                label={"reached": "opportunity", "within_days": 30, "from": "mql"},
                definition_version="parity-likelihood",
                window=(None, None),
                rows=80,
                positives=32,
                fingerprint="parity",
                reference={},
                now=NOW,
                actor="test",
            )
            registry.promote(connection, entry.version, now=NOW)
        wiring.close()

    return prepare


def test_a_live_model_decides_alike_on_every_path(
    tmp_path: Path, live_model: tuple[Path, bytes]
) -> None:
    definition_path, artifact = live_model
    env = {
        **os.environ,
        "MQL_CLOCK": NOW.isoformat(),
        "MQL_DEFINITION": str(definition_path),
        "MQL_FIRMOGRAPHICS_CSV": "",
    }
    prepare = _promoting(definition_path, artifact)
    reference = snapshot(_via_api(tmp_path, env, MESSAGES, prepare), definition_path)
    assert len(reference) == 5
    for key, person in reference.items():
        likelihood = person["card"]["likelihood"]
        assert likelihood["model_version"] == 1 and likelihood["top"], key
    ada = reference["email:ada@acme.com user_id:u-ada"]
    dee = reference["anonymous_id:anon-x email:dee@acme.com user_id:u-dee"]
    assert ada["card"]["likelihood"]["value"] > 0.45 > 0.4 > dee["card"]["likelihood"]["value"]
    assert ada["card"]["likelihood"]["top"][0]["feature"] == "trait__seniority"
    # the likelihood decides: the VP is an MQL on the predicted path (without the model, a
    # hand-raiser), and the head of growth, an engagement MQL without it, stays a lead
    assert ada["decisions"][-1] == ("lead", "mql", "qualified:predicted", "predicted")
    assert dee["stage"] == "lead" and all(d[1] != "mql" for d in dee["decisions"])
    for path in (_via_jsonl, _via_csv, _via_demo):
        assert snapshot(path(tmp_path, env, MESSAGES, prepare), definition_path) == reference, (
            path.__name__
        )


def test_an_undone_merge_rescores_with_the_live_model(
    tmp_path: Path, live_model: tuple[Path, bytes]
) -> None:
    definition_path, artifact = live_model
    env = {
        **os.environ,
        "MQL_CLOCK": NOW.isoformat(),
        "MQL_DEFINITION": str(definition_path),
        "MQL_FIRMOGRAPHICS_CSV": "",
    }
    prepare = _promoting(definition_path, artifact)
    separate = [m for m in MESSAGES if m is not MERGING]
    expected = snapshot(_via_jsonl(tmp_path, env, separate, prepare), definition_path)
    merged_url = _merged_then_undone(tmp_path, env, prepare)
    after = snapshot(merged_url, definition_path)
    assert after.keys() == expected.keys()
    for key, person in expected.items():
        got = after[key]
        assert got["card"]["likelihood"] is not None, key
        assert got["card"] == person["card"], key  # likelihood, version, contributions
        assert got["stage"] == person["stage"], key

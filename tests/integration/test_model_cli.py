"""`mql model train|evaluate|scorecard` on a 3,000-row sample of the UCI Bank Marketing
data (tests/data/README.md): the files they write, the one JSON object, the leak warning,
the proposed definition `mql validate` accepts, and clear errors."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from mqlengine.cli.app import app
from mqlengine.predict.modeling import FittedModel
from support.paths import ROOT

BANK = ROOT / "tests" / "data" / "bank-sample-3000.csv"


def mql(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def no_definition(tmp_path: Path) -> list[str]:
    return ["--definition", str(tmp_path / "absent.yaml")]


def test_train_writes_a_model_and_names_the_leak(tmp_path: Path) -> None:
    out = tmp_path / "model.json"
    code, stdout, stderr = mql(
        "model", "train", "--csv", str(BANK), "--label", "y", "--trials", "2", "--out", str(out)
    )
    assert code == 0, stderr
    assert "duration: its name reads like something measured during or after" in stderr
    assert "top features by gain:" in stdout and "held out: ROC AUC" in stdout
    model = FittedModel.from_bytes(out.read_bytes())
    assert model.kind == "lightgbm" and "duration" in model.features
    assert model.importance()[0][0] == "duration"  # the leak dominates when kept

    code, stdout, stderr = mql(
        "model",
        "train",
        "--csv",
        str(BANK),
        "--label",
        "y",
        "--drop",
        "duration",
        "--trials",
        "2",
        "--seed",
        "3",
        "--out",
        str(out),
    )
    assert code == 0 and "duration" not in stderr
    assert "duration" not in FittedModel.from_bytes(out.read_bytes()).features


def test_evaluate_json_is_one_object_and_the_model_beats_naive_bayes(
    no_definition: list[str],
) -> None:
    code, stdout, stderr = mql(
        *no_definition,
        "model",
        "evaluate",
        "--csv",
        str(BANK),
        "--label",
        "y",
        "--drop",
        "duration",
        "--trials",
        "2",
        "--format",
        "json",
        "--threshold",
        "0.3",
    )
    assert code == 0, stderr
    doc = orjson.loads(stdout)
    assert doc["rows"] == 3000 and doc["positives"] == 333 and doc["positive"] == "yes"
    assert doc["validation"] == {"folds": 5, "stratified": True, "seed": 0, "budget_s": 60.0}
    assert set(doc["models"]) == {"model", "lightgbm_default", "logistic", "naive_bayes"}
    for entry in doc["models"].values():
        assert {"roc_auc", "pr_auc", "log_loss", "brier"} <= set(entry)
    model, nb = doc["models"]["model"], doc["models"]["naive_bayes"]
    assert model["roc_auc"] > nb["roc_auc"] and model["log_loss"] < nb["log_loss"]
    assert model["brier"] < nb["brier"]
    assert "duration" in doc["dropped"] and "duration" not in doc["features"]
    assert model["at_threshold"]["threshold"] == 0.3
    assert model["threshold_unit"] == "probability"


def test_scorecard_proposes_fit_rules_that_validate_and_evaluate(tmp_path: Path) -> None:
    proposed = tmp_path / "proposed.yaml"
    code, stdout, stderr = mql(
        "model",
        "scorecard",
        "--csv",
        str(BANK),
        "--label",
        "y",
        "--drop",
        "duration",
        "--trials",
        "1",
        "--out",
        str(proposed),
    )
    assert code == 0, stderr
    assert "held-out ROC AUC: scorecard 0." in stdout and ", model 0." in stdout
    code, stdout, _ = mql("validate", str(proposed))
    assert code == 0 and "fit rules" in stdout
    report = tmp_path / "report.html"
    code, stdout, stderr = mql(
        "--definition",
        str(proposed),
        "model",
        "evaluate",
        "--csv",
        str(BANK),
        "--label",
        "y",
        "--drop",
        "duration",
        "--trials",
        "1",
        "--format",
        "html",
        "--out",
        str(report),
    )
    assert code == 0, stderr
    page = report.read_text()
    assert "definition&#x27;s fit rules" in page and "(points)" in page
    assert "(probability, same share as the rules)" in page
    # self-contained: inline SVG charts, nothing fetched, no scripts
    assert page.count("<svg") == 3 and "Cumulative gains by decile" in page
    assert "<script" not in page and "<link" not in page and "src=" not in page
    assert "naive Bayes (Odoo CRM style)" in page


def test_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    code, _stdout, stderr = mql("model", "train", "--csv", str(BANK), "--label", "outcome")
    assert code == 4 and "no label column 'outcome'" in stderr
    code, _stdout, stderr = mql(
        "model", "train", "--csv", str(tmp_path / "none.csv"), "--label", "y"
    )
    assert code == 4 and "none.csv: no such file" in stderr
    code, _stdout, stderr = mql(
        "model", "train", "--csv", str(BANK), "--label", "y", "--budget", "soon"
    )
    assert code == 2 and "--budget: 'soon' is not a duration" in stderr

"""Labels, drift, the `predict:` section and how the likelihood takes part in decisions."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from mqlengine.definition.compiler import likelihood_notes, parse_definition
from mqlengine.domain.rules import PredictConfig
from mqlengine.domain.scoring import Likelihood, Scorer
from mqlengine.errors import DefinitionError
from mqlengine.predict import drift
from mqlengine.predict.labels import label_leads
from support.paths import EXAMPLE

NOW = datetime(2026, 11, 20, tzinfo=UTC)
DAY = timedelta(days=1)


def test_labels_from_history() -> None:
    config = PredictConfig(label_reached="sql", within_days=30, label_from="mql")
    start = NOW - 100 * DAY
    first_seen = {1: start, 2: start, 3: start, 4: start, 5: start, 6: NOW - 20 * DAY}
    entries = [
        (1, "mql", start + DAY),
        (1, "sql", start + 10 * DAY),  # within 30 days: positive
        (2, "mql", start + DAY),
        (2, "sql", start + 40 * DAY),  # too late: negative
        (3, "mql", start + DAY),
        (3, "customer", start + 5 * DAY),  # a later stage counts as reaching sql
        (4, "sql", start + DAY),  # never an MQL: not labelled from mql
        (5, "mql", start + 2 * DAY),
        (5, "mql", start + DAY),  # the first MQL entry is the moment
        (6, "mql", NOW - 10 * DAY),  # window still open: not labelled
    ]
    labels = {x.person_id: x for x in label_leads(entries, first_seen, config, now=NOW)}
    assert set(labels) == {1, 2, 3, 5}
    assert labels[1].positive and not labels[2].positive and labels[3].positive
    assert labels[5].start == start + DAY and not labels[5].positive
    from_lead = PredictConfig(label_reached="mql", within_days=30, label_from="lead")
    lead_labels = {x.person_id: x for x in label_leads(entries, first_seen, from_lead, now=NOW)}
    assert lead_labels[1].positive and lead_labels[1].start == start
    assert 6 not in lead_labels


def test_psi_is_zero_for_the_same_population_and_grows_with_a_shift() -> None:
    values = [float(i % 50) for i in range(1000)]
    reference = drift.numeric_reference(values)
    same = drift.psi(reference["shares"], drift.shares(reference, values))
    shifted = drift.psi(reference["shares"], drift.shares(reference, [v + 25 for v in values]))
    assert same == pytest.approx(0.0, abs=1e-9)
    assert shifted > 0.2
    levels = ["a"] * 80 + ["b"] * 20
    categorical = drift.categorical_reference(levels)
    flipped = drift.shares(categorical, ["a"] * 20 + ["b"] * 80)
    assert drift.psi(categorical["shares"], flipped) > 0.2
    report = drift.drift_report(
        {"features": {"x": reference}, "likelihood": drift.numeric_reference([0.1, 0.2])},
        {"x": [v + 25 for v in values]},
        [0.9, 0.95],
        warn_psi=0.2,
    )
    assert report["warnings"][0] == "likelihood" and "x" in report["warnings"]
    assert not math.isnan(report["features"]["x"])


def _definition(extra: str, qualify_extra: str = "") -> str:
    text = EXAMPLE.read_text()
    text = text.replace("qualify:\n", f"qualify:\n{qualify_extra}", 1)
    return text + extra


def test_predict_section_and_likelihood_conditions_are_validated() -> None:
    loaded = parse_definition(
        _definition(
            "\npredict:\n  label: {reached: opportunity, within_days: 60, from: mql}\n",
            "  min_likelihood: 0.2\n",
        )
    )
    assert loaded.definition.predict.label_reached == "opportunity"
    assert loaded.definition.qualify.min_likelihood == 0.2
    notes = "\n".join(likelihood_notes(loaded))
    assert "opportunity or later within 60 days" in notes and "min_likelihood 0.2" in notes
    with pytest.raises(DefinitionError) as bad:
        parse_definition(_definition("\npredict:\n  label: {reached: won}\n"))
    assert "predict.label.reached" in "\n".join(bad.value.diagnostics)
    with pytest.raises(DefinitionError) as bad:
        parse_definition(_definition("", "  min_likelihood: 1.5\n"))
    assert "min_likelihood" in "\n".join(bad.value.diagnostics)


def test_likelihood_gates_and_paths_only_with_a_model() -> None:
    text = _definition(
        "",
        "  min_likelihood: 0.3\n",
    ).replace(
        "  paths:\n",
        "  paths:\n    - {type: predicted, when: {likelihood_at_least: 0.9}, "
        "bypass_threshold: true}\n",
        1,
    )
    definition = parse_definition(text).definition
    scorer = Scorer(definition)
    assert scorer.reads_likelihood
    traits = {"seniority": "vp", "department": "marketing", "email": "a@b.example"}
    traits["company"] = {"employees": 500, "industry": "software"}  # type: ignore[assignment]
    plain = scorer.score(traits, [], NOW)
    assert plain.likelihood is None
    # no model: the rules alone (the path asking for the likelihood does not match)
    assert plain.matched_path != "predicted"
    likely = scorer.score(traits, [], NOW, likelihood=Likelihood(0.95, 3, (("fit", 0.4),)))
    assert likely.qualifies and likely.mql_type == "predicted" and likely.model_version == 3
    unlikely = scorer.score(traits, [], NOW, likelihood=Likelihood(0.1, 3))
    assert not unlikely.qualifies and not unlikely.retains

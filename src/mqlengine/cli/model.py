"""`mql model train|evaluate|scorecard --csv FILE --label COL`: predictive scoring from a
plain table (CSV or Parquet). ``model_app`` is the ``mql model`` group; other modules add
their commands to it."""

from __future__ import annotations

import re
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import orjson
import typer

from mqlengine.cli.common import console, err_console, fail, handle_errors, settings
from mqlengine.cli.csvopts import DelimiterOpt, EncodingOpt

if TYPE_CHECKING:
    from mqlengine.definition.compiler import LoadedDefinition
    from mqlengine.predict.tabular import Table

model_app = typer.Typer(
    name="model",
    help="Predictive likelihood: train, evaluate and turn into a scorecard.",
    no_args_is_help=True,
)

CsvOpt = Annotated[
    Path | None,
    typer.Option(
        "--csv",
        help="The table: a CSV file (or .parquet), one row per lead. Without it: the "
        "store's own labelled leads (the definition's `predict:` label).",
    ),
]
LabelOpt = Annotated[str | None, typer.Option("--label", help="The outcome column (with --csv).")]
PositiveOpt = Annotated[
    str | None,
    typer.Option("--positive", help="The label's positive value (default: yes/1/true/won…)."),
]
DropOpt = Annotated[
    list[str] | None, typer.Option("--drop", help="Leave this column out (repeatable).")
]
KeepOpt = Annotated[
    list[str] | None,
    typer.Option("--keep", help="Keep a column the checks would drop (repeatable)."),
]
TimeOpt = Annotated[
    str | None,
    typer.Option("--time", help="A date column: validate on later rows than those trained on."),
]
BudgetOpt = Annotated[
    str, typer.Option("--budget", help="Time for tuning, e.g. 60s, 5m (default 60s).")
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed (same seed, same model).")]
TrialsOpt = Annotated[
    int | None,
    typer.Option(
        "--trials",
        min=1,
        help="Try exactly this many parameter sets (results then do not depend on the "
        "machine's speed).",
    ),
]


class ReportFormat(StrEnum):
    json = "json"
    text = "text"
    html = "html"


def parse_budget(text: str) -> float:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|m|h)?\s*", text)
    if match is None or float(match[1]) <= 0:
        fail(f"--budget: {text!r} is not a duration (e.g. 30s, 5m)", 2)
        raise AssertionError
    return float(match[1]) * {"s": 1, "m": 60, "h": 3600}[match[2] or "s"]


def _say(message: str) -> None:
    err_console.print(message, style="dim", highlight=False)


def _table(
    csv: Path,
    label: str,
    positive: str | None,
    drop: list[str] | None,
    keep: list[str] | None,
    time_column: str | None,
    delimiter: str | None,
    encoding: str | None,
) -> Table:
    from mqlengine.predict.tabular import read_table

    table = read_table(
        csv,
        label=label,
        positive=positive,
        drop=drop or (),
        keep=keep or (),
        time_column=time_column,
        delimiter=delimiter,
        encoding=encoding,
    )
    for note in table.notes:
        err_console.print(f"warning: {note.text()}", style="yellow", highlight=False)
    if table.unlabelled:
        err_console.print(
            f"warning: {table.unlabelled} row(s) without a label left out",
            style="yellow",
            highlight=False,
        )
    return table


@model_app.command("train")
@handle_errors
def train(
    csv: CsvOpt = None,
    label: LabelOpt = None,
    positive: PositiveOpt = None,
    drop: DropOpt = None,
    keep: KeepOpt = None,
    time_column: TimeOpt = None,
    budget: BudgetOpt = "60s",
    seed: SeedOpt = 0,
    trials: TrialsOpt = None,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Where to write the model (JSON).")
    ] = Path("model.json"),
    delimiter: DelimiterOpt = None,
    encoding: EncodingOpt = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Store training: print the registry entry as JSON.")
    ] = False,
) -> None:
    """Train a tuned, calibrated LightGBM: on a table (`--csv`, written as JSON), or on
    the store's labelled leads (registered as a candidate: `mql model promote`)."""
    from mqlengine.predict.modeling import fit_best

    seconds = parse_budget(budget)
    if csv is None:
        from mqlengine.cli.model_registry import fit

        fit(budget=seconds, seed=seed, as_json=as_json)
        return
    label = _need_label(label)
    table = _table(csv, label, positive, drop, keep, time_column, delimiter, encoding)
    model = fit_best(
        table.X, table.y, budget_s=seconds, seed=seed, progress=_say, max_trials=trials
    )
    out.write_bytes(model.to_bytes())
    p = model.params
    console.print(
        f"model: LightGBM, {p['trials']} parameter set(s) tried, validation {p['validation']}; "
        f"learning rate {p['learning_rate']}, {p['num_leaves']} leaves, "
        f"min {p['min_child_samples']} per leaf, feature fraction {p['feature_fraction']}, "
        f"L2 {p['lambda_l2']}, {p['rounds']} rounds"
        + (", features alone (no interactions)" if p.get("additive") else "")
        + f"; calibration {model.calibration}",
        highlight=False,
    )
    metrics = model.metrics
    console.print(
        f"held out: ROC AUC {metrics['roc_auc']:.4f}, PR AUC {metrics['pr_auc']:.4f}, "
        f"log loss {metrics['log_loss']:.4f}, Brier {metrics['brier']:.4f} "
        f"({table.rows:,} rows, {table.positives:,} positive)",
        highlight=False,
    )
    console.print("top features by gain:", highlight=False)
    for name, share in model.importance()[:10]:
        console.print(f"  {name:30} {share:6.1%}", highlight=False)
    console.print(f"wrote {out}", highlight=False)


def _definition() -> LoadedDefinition | None:
    """The definition in force (--definition, $MQL_DEFINITION or ./mql.yaml), if there is one."""
    from mqlengine.definition.compiler import load_definition

    path = settings().definition_path
    if not path.exists():
        return None
    return load_definition(path)


@model_app.command("evaluate")
@handle_errors
def evaluate(
    csv: CsvOpt = None,
    label: LabelOpt = None,
    positive: PositiveOpt = None,
    drop: DropOpt = None,
    keep: KeepOpt = None,
    budget: BudgetOpt = "60s",
    seed: SeedOpt = 0,
    trials: TrialsOpt = None,
    format: Annotated[
        ReportFormat, typer.Option("--format", help="json, text or html.")
    ] = ReportFormat.text,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write the report here (default: stdout).")
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(
            "--threshold",
            min=0.0,
            max=1.0,
            help="Probability at which precision and recall are shown (default: the share "
            "of leads the definition's threshold flags, else 0.5).",
        ),
    ] = None,
    delimiter: DelimiterOpt = None,
    encoding: EncodingOpt = None,
) -> None:
    """Compare the tuned model, default LightGBM, logistic regression, Odoo-style naive
    Bayes and (when its fit rules read the table) the definition, by 5-fold CV."""
    from mqlengine.predict import report as render
    from mqlengine.predict.evaluate import cross_validate, report

    seconds = parse_budget(budget)
    if csv is None:
        from mqlengine.cli.model_registry import evaluate as evaluate_store

        evaluate_store(seed=seed, folds=5, budget=seconds, as_json=format is ReportFormat.json)
        return
    label = _need_label(label)
    table = _table(csv, label, positive, drop, keep, None, delimiter, encoding)
    definition = _definition()
    evaluation = cross_validate(
        table,
        budget_s=seconds,
        seed=seed,
        definition=definition,
        max_trials=trials,
        progress=_say,
    )
    doc = report(evaluation, table, threshold=threshold)
    if format is ReportFormat.json:
        text = orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY).decode()
        text = text + "\n"
    elif format is ReportFormat.html:
        text = render.html_page(doc)
    else:
        text = render.text(doc)
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")
        err_console.print(f"wrote {out}", highlight=False)


@model_app.command("scorecard")
@handle_errors
def scorecard(
    csv: CsvOpt = None,
    label: LabelOpt = None,
    positive: PositiveOpt = None,
    drop: DropOpt = None,
    keep: KeepOpt = None,
    budget: BudgetOpt = "30s",
    seed: SeedOpt = 0,
    trials: TrialsOpt = None,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Where to write the proposed definition.")
    ] = Path("proposed.yaml"),
    delimiter: DelimiterOpt = None,
    encoding: EncodingOpt = None,
) -> None:
    """Fit a points scorecard (20 points double the odds) and write it as a definition's
    fit rules; its held-out ROC AUC is shown next to the model's."""
    from mqlengine.predict import metrics as m
    from mqlengine.predict.modeling import fit_best, stratified_folds
    from mqlengine.predict.scorecard import fit_scorecard

    seconds = parse_budget(budget)
    if csv is None:
        from mqlengine.errors import ValidationError

        raise ValidationError("scorecard needs a table: --csv FILE --label COLUMN")
    label = _need_label(label)
    table = _table(csv, label, positive, drop, keep, None, delimiter, encoding)
    features = list(table.X.features)
    source = table.source[features]
    categorical = table.X.categorical
    train_rows, test_rows = stratified_folds(table.y, 5, seed)[0]
    held_card = fit_scorecard(
        source.iloc[train_rows].reset_index(drop=True), table.y[train_rows], categorical, seed=seed
    )
    card_auc = m.roc_auc(
        table.y[test_rows], held_card.points(source.iloc[test_rows].reset_index(drop=True))
    )
    model = fit_best(
        table.X.take(train_rows),
        table.y[train_rows],
        budget_s=seconds,
        seed=seed,
        max_trials=trials,
        progress=_say,
    )
    model_auc = m.roc_auc(table.y[test_rows], model.predict(table.X.take(test_rows)))
    card = fit_scorecard(source, table.y, categorical, seed=seed)
    for note in card.notes:
        err_console.print(f"note: {note}", style="dim", highlight=False)
    stem = re.sub(r"[^a-z0-9]+", "-", csv.stem.lower()).strip("-") or "table"
    header = (
        f"# A proposed fit section learned from {csv.name} ({table.rows:,} rows, "
        f"{table.positives:,} with {table.label} = {table.positive!r}).\n"
        "# 20 points double the odds; 0 points = the odds at the intercept "
        f"({card.base_points:+d} points).\n"
        f"# Held-out ROC AUC: scorecard {card_auc:.4f}, model {model_auc:.4f}.\n"
        "# The threshold balances precision and recall on the training rows; copy the fit\n"
        "# rules into your mql.yaml and check them with `mql validate` and `mql test`.\n"
    )
    out.write_text(
        card.yaml(
            version=f"scorecard-{stem}",
            description=f"Scorecard learned from {csv.name}",
            header=header,
        ),
        encoding="utf-8",
    )
    rules = sum(1 for f in card.features for b in f.bins if b.points)
    console.print(
        f"scorecard: {len(card.features)} feature(s), {rules} rule(s), threshold "
        f"{card.threshold} points",
        highlight=False,
    )
    console.print(
        f"held-out ROC AUC: scorecard {card_auc:.4f}, model {model_auc:.4f}", highlight=False
    )
    console.print(f"wrote {out}", highlight=False)


def _need_label(label: str | None) -> str:
    if label is None:
        from mqlengine.errors import ValidationError

        raise ValidationError("--csv needs --label COLUMN: the column holding the outcome")
    return label


def register(app: typer.Typer) -> None:
    from mqlengine.cli.model_registry import register_model_commands

    register_model_commands(model_app)
    app.add_typer(model_app, name="model")

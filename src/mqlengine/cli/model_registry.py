"""`mql model …`: train the likelihood on the store's own outcomes, and the registry.

`fit` trains and registers a candidate, `evaluate` cross-validates it against logistic
regression and the rules, `list`/`show` read the registry, `promote`/`rollback` change
which model is live (audited), `shadow-report` compares a shadow candidate with the live
model, `drift` compares today's population with the live model's training set.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
import typer
from rich.table import Table

from mqlengine.cli.access import audit_cli, cli_actor
from mqlengine.cli.common import console, escape, handle_errors, wiring


def _json(data: Any) -> None:
    console.print_json(orjson.dumps(data, default=str).decode())


def _fmt(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


@handle_errors
def fit(
    budget: Annotated[float, typer.Option("--budget", help="Seconds the search may take.")] = 60,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same data, same model).")] = 0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the registry entry as JSON.")
    ] = False,
) -> None:
    """Train on the store's labelled leads (the definition's `predict:` label) and
    register the model as a candidate."""
    from mqlengine.predict.trainset import train_from_store

    engine = wiring()
    definition = engine.definition().definition
    progress = None if as_json else (lambda line: console.print(line, highlight=False))
    entry = train_from_store(
        engine.db,
        definition,
        now=engine.clock(),
        budget_s=budget,
        seed=seed,
        actor=cli_actor(),
        progress=progress,
    )
    with engine.db.begin() as connection:
        audit_cli(
            connection,
            "model.train",
            f"model:{entry.version}",
            {"rows": entry.rows, "positives": entry.positives, "metrics": entry.metrics},
        )
    if as_json:
        _json(entry.to_dict())
        return
    metrics = ", ".join(f"{k} {v:.3f}" for k, v in entry.metrics.items())
    console.print(
        f"model v{entry.version} ({entry.kind}) registered as a candidate: {entry.rows} leads, "
        f"{entry.positives} positive; held out: {metrics}. "
        f"`mql model promote {entry.version}` makes it live.",
        highlight=False,
    )


@handle_errors
def evaluate(
    seed: Annotated[int, typer.Option("--seed", help="Random seed of the folds.")] = 0,
    folds: Annotated[int, typer.Option("--folds", min=2, max=20)] = 5,
    budget: Annotated[float, typer.Option("--budget", help="Seconds for all folds.")] = 60,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Cross-validate the model, logistic regression and the rules' total score on the
    store's labelled leads (stratified folds, fixed seed)."""
    from mqlengine.predict.trainset import evaluate_from_store

    engine = wiring(create=False)
    definition = engine.definition().definition
    result = evaluate_from_store(
        engine.db, definition, now=engine.clock(), seed=seed, folds=folds, budget_s=budget
    )
    if as_json:
        _json(result)
        return
    table = Table(title=f"{result['rows']} leads, {result['positives']} positive, {folds} folds")
    table.add_column("candidate")
    for name in ("roc_auc", "pr_auc", "log_loss", "brier"):
        table.add_column(name, justify="right")
    for name, values in result["models"].items():
        table.add_row(name, *(_fmt(values[k]) for k in ("roc_auc", "pr_auc", "log_loss", "brier")))
    console.print(table)


@handle_errors
def list_models(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Every registered model, newest first."""
    from mqlengine.predict import registry

    engine = wiring(create=False)
    with engine.db.read() as connection:
        entries = registry.list_models(connection)
    if as_json:
        _json([e.to_dict() for e in entries])
        return
    table = Table()
    for name in ("version", "status", "kind", "rows", "positives", "roc_auc", "created"):
        table.add_column(name)
    for e in entries:
        table.add_row(
            str(e.version),
            e.status,
            e.kind,
            str(e.rows),
            str(e.positives),
            _fmt(e.metrics.get("roc_auc")),
            e.created_at.isoformat(timespec="seconds"),
        )
    console.print(table)


@handle_errors
def show(
    version: Annotated[int, typer.Argument(help="Model version.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """One model: label, training window, data fingerprint, features, metrics, status."""
    from mqlengine.predict import registry

    engine = wiring(create=False)
    with engine.db.read() as connection:
        entry = registry.get(connection, version)
    data = entry.to_dict()
    if as_json:
        _json(data)
        return
    for key, value in data.items():
        if key == "features":
            console.print(f"features ({len(value)}): {', '.join(value)}", highlight=False)
        else:
            console.print(f"{key}: {value}", highlight=False)


@handle_errors
def promote(version: Annotated[int, typer.Argument(help="Model version.")]) -> None:
    """Make a model live (the live one is retired); scoring uses it from the next batch."""
    from mqlengine.predict import registry

    engine = wiring()
    with engine.db.begin() as connection:
        entry, retired = registry.promote(connection, version, now=engine.clock())
        audit_cli(connection, "model.promote", f"model:{version}", {"retired": retired})
    console.print(
        f"model v{entry.version} is live" + (f" (v{retired} retired)" if retired else ""),
        highlight=False,
    )


@handle_errors
def rollback() -> None:
    """Retire the live model and make the one live before it live again."""
    from mqlengine.predict import registry

    engine = wiring()
    with engine.db.begin() as connection:
        retired, entry = registry.rollback(connection, now=engine.clock())
        audit_cli(connection, "model.rollback", f"model:{entry.version}", {"retired": retired})
    console.print(f"model v{entry.version} is live again (v{retired} retired)", highlight=False)


@handle_errors
def shadow_report(
    version: Annotated[
        int | None, typer.Option("--version", help="Shadow model (default: the newest).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Compare a shadow candidate with the live model: decisions and calibration."""
    from mqlengine.predict.serving import shadow_report as report

    engine = wiring(create=False)
    with engine.db.read() as connection:
        data = report(
            connection, engine.definition().definition, now=engine.clock(), version=version
        )
    if as_json or data.get("shadow_version") is None:
        _json(data)
        return
    console.print(
        f"shadow v{data['shadow_version']} beside live {data['live_versions'] or '—'}: "
        f"{data['scorings']} scorings of {data['persons']} persons, decisions agree "
        f"{_fmt(data['agreement'])}; flips to MQL {data['flips']['to_mql']}, "
        f"from MQL {data['flips']['from_mql']}",
        highlight=False,
    )
    for side, values in data["calibration"].items():
        if values is None:
            console.print(f"{side}: no labelled leads yet", highlight=False)
        else:
            console.print(
                f"{side}: {values['leads']} labelled leads, mean predicted "
                f"{values['mean_predicted']:.3f}, observed {values['observed_rate']:.3f}, "
                f"Brier {values['brier']:.3f}",
                highlight=False,
            )


@handle_errors
def drift(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Population stability (PSI) of each feature and of the likelihood: the live model's
    training set against the persons seen in the last `predict.drift_window_days` days."""
    from mqlengine.predict.trainset import live_drift

    engine = wiring(create=False)
    with engine.db.read() as connection:
        data = live_drift(connection, engine.definition().definition, now=engine.clock())
    if as_json or data.get("model_version") is None:
        _json(data)
        return
    console.print(
        f"model v{data['model_version']}, {data['rows']} persons seen in the last "
        f"{data['window_days']} days: likelihood PSI {_fmt(data['likelihood_psi'])}",
        highlight=False,
    )
    worst = sorted(data["features"].items(), key=lambda item: -item[1])[:10]
    for name, value in worst:
        flag = "  [yellow]drift[/]" if value > data["warn_psi"] else ""
        console.print(f"  {value:8.3f}  {escape(name)}{flag}", markup=True, highlight=False)


def register_model_commands(group: typer.Typer) -> None:
    """Add the store-backed commands to a `model` command group."""
    group.command("list")(list_models)
    group.command("show")(show)
    group.command("promote")(promote)
    group.command("rollback")(rollback)
    group.command("shadow-report")(shadow_report)
    group.command("drift")(drift)

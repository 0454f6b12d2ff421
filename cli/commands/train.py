"""`paycycle train churn`, `tune`, `evaluate`, `promote churn|history|rollback`, `ui`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cli.commands.child import check_port_free, run_child
from inference.registry import CHAMPION, CHURN_MODEL, OFFERS_MODEL, RECOMMENDER_MODEL
from paycycle import config
from paycycle.console import cli_log_path
from paycycle.errors import EXIT_FAILURE, ConfigError

console = Console(stderr=True)
out = Console()
MODELS = {"churn": CHURN_MODEL, "recommender": RECOMMENDER_MODEL, "offers": OFFERS_MODEL}

train_app = typer.Typer(help="Train models.", no_args_is_help=True)
promote_app = typer.Typer(
    help="Champion/challenger promotion, history and rollback.", no_args_is_help=True
)


def _model_name(model: str) -> str:
    if model not in MODELS:
        raise ConfigError(f"model: expected one of {', '.join(MODELS)}, got {model!r}")
    return MODELS[model]


def _metrics_table(title: str, metrics: dict[str, float]) -> Table:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in metrics.items():
        table.add_row(k, f"{v:.4f}" if isinstance(v, float) else str(v))
    return table


METRICS_HELP = "Also write the metrics to this JSON file (DVC metrics)."
KEY_METRICS = (
    "auc", "pr_auc", "brier", "ece", "lift_top_decile", "oracle_auc", "oracle_brier",
    "oracle_auc_ratio",
)  # fmt: skip


@train_app.command("churn")
def train_churn_command(
    csv: Annotated[
        Path | None, typer.Option(help="Bring your own table: a CSV, one row per customer.")
    ] = None,
    target: Annotated[
        str | None, typer.Option(help="With --csv: the churn column (yes/no, true/false, 1/0).")
    ] = None,
    id_column: Annotated[
        str | None, typer.Option("--id", help="With --csv: the customer id column (not a feature).")
    ] = None,
    data_hash: Annotated[
        str | None, typer.Option(help="Data version to log (default: DVC hash / file MD5).")
    ] = None,
    register: Annotated[
        bool, typer.Option(help="Register the model as paycycle-churn@challenger.")
    ] = True,
    metrics: Annotated[Path | None, typer.Option(help=METRICS_HELP)] = None,
) -> None:
    """Train the churn model on the feature table (or on your own CSV) and log it to MLflow."""
    from training.churn import pipeline
    from training.tracking import write_metrics_file

    settings = config.load()
    if csv is not None:
        if not target:
            raise ConfigError("--target: required with --csv (the churn column)")
        with console.status(f"training on {csv}"):
            result, report = pipeline.train_byo(settings, csv, target, id_column)
        for line in report.lines():
            console.print(f"[dim]•[/dim] {line}")
    else:
        with console.status("training churn model on the feature table"):
            result = pipeline.train_from_table(settings, data_hash=data_hash, register=register)
    shown = {k: result.metrics[k] for k in KEY_METRICS if k in result.metrics}
    out.print(_metrics_table(f"holdout metrics (run {result.run_id[:8]})", shown))
    if result.version:
        console.print(f"registered paycycle-churn version {result.version} as challenger")
    if metrics is not None:
        write_metrics_file(metrics, result.metrics, version=result.version, run_id=result.run_id)
    console.print(f"tracking: {settings.tracking_uri}")


def tune(
    trials: Annotated[
        int | None, typer.Option(help="Trial budget (params: tuning.trials).")
    ] = None,
    workers: Annotated[int, typer.Option(help="Worker processes on the one study.")] = 1,
    study: Annotated[str | None, typer.Option(help="Study name (params: tuning.study).")] = None,
    storage: Annotated[
        str | None,
        typer.Option(help="Optuna storage URL (default $PAYCYCLE_OPTUNA_STORAGE or optuna.db)."),
    ] = None,
    pruning: Annotated[
        bool, typer.Option(help="Prune weak trials (params: tuning.pruner) on per-epoch val AUC.")
    ] = True,
) -> None:
    """Optuna search (TPE + pruning) for the churn model; every trial is an MLflow child run."""
    from training.churn.tune import tune as run_tune

    settings = config.load()
    with console.status(f"tuning with {workers} worker(s)"):
        result = run_tune(settings, trials, workers, study, storage, pruning)
    out.print(
        f"study {result.study}: best val AUC {result.best_value:.4f} "
        f"({result.complete} complete, {result.pruned} pruned, {result.failed} failed, "
        f"{result.seconds:.0f}s)"
    )
    out.print(f"best params: {json.dumps(result.best_params)}")


def tune_worker(
    study: Annotated[str, typer.Option(help="Study name.")],
    trials: Annotated[int, typer.Option(help="Trial budget of the whole study.")],
    parent_run: Annotated[str | None, typer.Option(help="MLflow parent run id.")] = None,
) -> None:
    """One tuning worker process (started by `paycycle tune --workers N`)."""
    from training.churn.tune import run_worker

    settings = config.load()
    run_worker(settings, study, settings.optuna_url, trials, parent_run)


def evaluate(
    alias: Annotated[str, typer.Option(help="Registry alias to evaluate.")] = CHAMPION,
    metrics: Annotated[Path | None, typer.Option(help=METRICS_HELP)] = None,
) -> None:
    """Score paycycle-churn@ALIAS on the current holdout, next to the oracle."""
    from training.churn.pipeline import evaluate_alias
    from training.tracking import write_metrics_file

    settings = config.load()
    version, scores = evaluate_alias(settings, alias)
    out.print(_metrics_table(f"paycycle-churn@{alias} (version {version})", scores))
    if metrics is not None:
        write_metrics_file(metrics, scores, alias=alias, version=version)


@promote_app.command("churn")
def promote_churn_command() -> None:
    """Move paycycle-churn@champion to the challenger if it passes floors, margin and checks."""
    from training.churn.pipeline import promote_churn

    settings = config.load()
    with console.status("evaluating challenger and champion on the holdout"):
        decision = promote_churn(settings)
    verb = "[green]promoted[/green]" if decision.promoted else "[red]refused[/red]"
    out.print(f"{verb} version {decision.version}: {decision.reason}")


@promote_app.command("rollback")
def rollback_command(
    model: Annotated[str, typer.Argument(help=f"One of: {', '.join(MODELS)}.")],
) -> None:
    """Put the previous champion back in one step."""
    from training.registry import rollback

    decision = rollback(_model_name(model), config.load())
    out.print(decision.reason)


@promote_app.command("history")
def history_command(
    model: Annotated[str, typer.Argument(help=f"One of: {', '.join(MODELS)}.")] = "churn",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """Every promotion decision and alias move: who, when, why, metrics."""
    from training.registry import history, history_rows

    rows = history_rows(history(_model_name(model), config.load()))
    if as_json:
        for r in rows:
            out.print_json(json.dumps(r))
        return
    table = Table(title=f"{_model_name(model)} promotion history")
    for col in ("when", "who", "action", "version", "previous", "reason", "auc"):
        table.add_column(col)
    for r in rows:
        auc = r["metrics"].get("auc")
        table.add_row(
            r["when"],
            r["who"],
            r["action"],
            str(r["version"]),
            str(r["previous"]),
            r["reason"],
            f"{auc:.4f}" if auc is not None else "",
        )
    out.print(table)


def ui(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 5000,
) -> None:
    """Open the MLflow UI on 127.0.0.1 over the project's tracking store."""
    settings = config.load()
    check_port_free("127.0.0.1", port)
    out.print(f"MLflow UI on http://127.0.0.1:{port} ({settings.tracking_uri}; Ctrl-C stops it)")
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", settings.tracking_uri,
           "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    code = run_child(cmd)
    if code:
        log = cli_log_path(settings.root)
        typer.echo(f"error: mlflow ui exited with code {code} (its output: {log})", err=True)
        raise typer.Exit(EXIT_FAILURE)


def register(app: typer.Typer) -> None:
    """Attach the training commands to the main app."""
    app.add_typer(train_app, name="train")
    app.add_typer(promote_app, name="promote")
    app.command()(tune)
    app.command("tune-worker", hidden=True)(tune_worker)
    app.command()(evaluate)
    app.command()(ui)

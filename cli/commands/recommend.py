"""`paycycle recommend`, `paycycle offers`, `paycycle train|promote recommender|offers`."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from inference.registry import RECOMMENDER_MODEL
from paycycle import config
from paycycle.errors import ConfigError, DataError

console = Console(stderr=True)
out = Console()


def _parse_date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"--as-of: expected a date YYYY-MM-DD, got {value!r}") from None


def _as_of(events: dict[str, Any], as_of: str | None) -> dt.date:
    """The given date, else the month after the last complete usage month."""
    from inference.monthly_offers import month_after_usage

    return _parse_date(as_of) if as_of else month_after_usage(events)


def _load_registered(name: str, settings: config.Settings):
    from inference.registry import CHAMPION, load_scorer

    try:
        return load_scorer(name, CHAMPION, settings)
    except ConfigError as exc:
        raise ConfigError(f"{exc}; train and promote one first (paycycle train/promote)") from None


def recommend(
    customer: Annotated[int, typer.Option(help="Customer id.")],
    as_of: Annotated[
        str | None, typer.Option(help="Date YYYY-MM-DD (default: after the last usage month).")
    ] = None,
    k: Annotated[int | None, typer.Option(help="How many items (params: recommend.k).")] = None,
    plan_id: Annotated[
        int | None, typer.Option(help="What-if: score as if on this plan id.")
    ] = None,
    usage: Annotated[
        float | None, typer.Option(help="What-if: monthly usage units instead of last month's.")
    ] = None,
    addons: Annotated[
        str | None, typer.Option(help="What-if: owned add-ons, comma-separated names.")
    ] = None,
) -> None:
    """Next-best plans and add-ons for one customer, from paycycle-recommender@champion."""
    from features.build import load_events
    from features.recommender import build_rec_features
    from inference.recommender import prepare_inputs, rank_items

    settings = config.load()
    events = load_events(settings.raw_dir)
    day = _as_of(events, as_of)
    feats = build_rec_features(events, day)
    row = feats.loc[feats["customer_id"] == customer]
    if row.empty:
        raise DataError(f"--customer: {customer} is not an active customer on {day}")
    row = row.drop(columns=["plan_tier"]).copy()
    if plan_id is not None:
        row["plan_id"] = plan_id
    if usage is not None:
        row = row.drop(columns=["usage_ratio", "hist_usage_ratio"]).assign(usage_units=usage)
    if addons is not None:
        row = row.drop(columns=[c for c in row.columns if c.startswith("owned_")])
        row["addons"] = addons
    frame = prepare_inputs(row)  # validates before the model is loaded
    scorer, version = _load_registered(RECOMMENDER_MODEL, settings)
    ranked = rank_items(scorer(frame), k or settings.params.recommend.k)[0]
    table = Table(title=f"customer {customer} on {day} (paycycle-recommender v{version})")
    for col in ("rank", "item", "kind", "score"):
        table.add_column(col)
    for i, item in enumerate(ranked, 1):
        table.add_row(str(i), item["item"], item["kind"], f"{item['score']:.4f}")
    out.print(table)
    if not ranked:
        console.print("nothing to recommend: every add-on owned and no plan move makes sense")


def offers(
    budget: Annotated[
        float | None, typer.Option(help="USD of offer cost this month (params: offers.budget).")
    ] = None,
    as_of: Annotated[
        str | None, typer.Option(help="Decision date YYYY-MM-DD (default: after the last month).")
    ] = None,
    show: Annotated[int, typer.Option(help="Rows to print (all go to the CSV).")] = 20,
) -> None:
    """Choose retention offers under a budget with paycycle-offers@champion; writes a CSV."""
    from inference.monthly_offers import decide_month

    day = _parse_date(as_of) if as_of else None
    settings = config.load()
    with console.status("choosing offers with the champion policy and churn model"):
        month = decide_month(settings, budget, day)
    chosen, decisions, budget = month.chosen, month.decisions, month.budget
    table = Table(title=f"retention offers on {month.as_of} (budget {budget:,.0f} USD)")
    for col in ("customer", "offer", "EV USD", "cost USD", "P(churn)", "P(accept)", "reason"):
        table.add_column(col)
    for r in chosen.head(show).itertuples():
        cells = (r.expected_value, r.cost, r.p_churn, r.p_accept)
        table.add_row(str(r.customer_id), r.offer_type, *(f"{v:.2f}" for v in cells), r.reason)
    out.print(table)
    spent, value = chosen["cost"].sum(), chosen["expected_value"].sum()
    out.print(
        f"{len(chosen)} offers to {len(decisions)} customers at risk; cost {spent:,.2f} of "
        f"{budget:,.2f} USD; expected value {value:,.2f} USD"
    )
    console.print(f"wrote {month.csv_path} and {month.notify_path}")


def train_recommender_command(
    register: Annotated[
        bool, typer.Option(help="Register the model as paycycle-recommender@challenger.")
    ] = True,
    metrics: Annotated[
        Path | None, typer.Option(help="Also write the metrics to this JSON file (DVC metrics).")
    ] = None,
) -> None:
    """Train the recommender on the raw tables' snapshots, evaluate vs the oracle, log to MLflow."""
    from training.recommender.pipeline import build_table, train_and_log
    from training.tracking import write_metrics_file

    settings = config.load()
    with console.status("building recommender snapshots"):
        table = build_table(settings)
    with console.status("training the recommender"):
        result = train_and_log(settings, table, register=register)
    table_out = Table(title=f"recommender holdout (run {(result.run_id or '')[:8]})")
    table_out.add_column("metric")
    table_out.add_column("value", justify="right")
    for key, value in result.metrics.items():
        table_out.add_row(key, f"{value:.4f}")
    out.print(table_out)
    if result.version:
        console.print(f"registered paycycle-recommender version {result.version} as challenger")
    if metrics is not None:
        write_metrics_file(metrics, result.metrics, version=result.version, run_id=result.run_id)


def promote_recommender_command() -> None:
    """Move paycycle-recommender@champion to the challenger if it passes floor and margin."""
    from training.recommender.pipeline import promote_recommender

    settings = config.load()
    with console.status("evaluating challenger and champion on the holdout"):
        decision = promote_recommender(settings)
    verb = "[green]promoted[/green]" if decision.promoted else "[red]refused[/red]"
    out.print(f"{verb} version {decision.version}: {decision.reason}")


def train_offers_command(
    as_of: Annotated[
        str | None,
        typer.Option(help="Decision date YYYY-MM-DD (default: the last simulated month)."),
    ] = None,
    register: Annotated[
        bool, typer.Option(help="Register the policy as paycycle-offers@challenger.")
    ] = True,
) -> None:
    """Fit the offer policy on the offer history, log it to MLflow and register it."""
    from training.offers.pipeline import train_and_log_offers

    settings = config.load()
    day = _date_option(as_of)
    with console.status("learning acceptance and retention effects from the offer history"):
        result = train_and_log_offers(settings, as_of=day, register=register)
    table_out = Table(title=f"offer policy (run {(result.run_id or '')[:8]})")
    table_out.add_column("metric")
    table_out.add_column("value", justify="right")
    for key, value in result.metrics.items():
        table_out.add_row(key, f"{value:,.4f}")
    out.print(table_out)
    if result.version:
        console.print(f"registered paycycle-offers version {result.version} as challenger")


def promote_offers_command(
    as_of: Annotated[
        str | None,
        typer.Option(help="Decision date YYYY-MM-DD (default: the last simulated month)."),
    ] = None,
) -> None:
    """Move paycycle-offers@champion to the challenger if it beats every baseline (truth)."""
    from training.offers.pipeline import promote_offers

    settings = config.load()
    with console.status("scoring challenger, champion and baselines against the truth"):
        decision = promote_offers(settings, as_of=_date_option(as_of))
    verb = "[green]promoted[/green]" if decision.promoted else "[red]refused[/red]"
    out.print(f"{verb} version {decision.version}: {decision.reason}")


def _date_option(value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"--as-of: expected a date YYYY-MM-DD, got {value!r}") from None


def register(app: typer.Typer) -> None:
    """Attach `recommend`, `offers` and the recommender's and policy's train/promote commands."""
    from cli.commands.train import promote_app, train_app

    app.command()(recommend)
    app.command()(offers)
    train_app.command("recommender")(train_recommender_command)
    promote_app.command("recommender")(promote_recommender_command)
    train_app.command("offers")(train_offers_command)
    promote_app.command("offers")(promote_offers_command)

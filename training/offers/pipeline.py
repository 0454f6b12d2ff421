"""Offer policy stages composed: fit, log + register as `paycycle-offers`, promote by uplift.

Tracking, registration and promotion reuse the churn model's code (`training.tracking`,
`training.registry`): the fitted policy is exported as a JSON artifact
(`training.offers.export`), logged as the run's scorer model with the loader
`training.offers.export:load_offer_policy`, and registered as the `challenger`. The service
loads `paycycle-offers@champion` like the other models, so it never refits per request.

Promotion is the issue's uplift check as a rule: on the decision month (the last simulated month
by default) the challenger's decisions for every customer at risk are scored against the
simulator's truth (`training.offers.evaluate.compare_policies`, P(churn) = the true hazard so the
policy alone is judged) and it must beat no offers, the 0.5-threshold discount and random offers
at the same budget (floor on `uplift_vs_best_baseline`), then not lose net retained revenue to
the champion on the same customers (`MARGIN_USD`). The rule needs the truth; without it
promotion refuses to guess (`DataError`).
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from inference.registry import OFFERS_MODEL
from paycycle.config import OfferParams, Settings
from paycycle.errors import DataError
from training import registry, tracking

OFFERS_EXPERIMENT = OFFERS_MODEL
MIN_UPLIFT_USD = 0.01  # the policy must beat the best baseline by at least a cent
MARGIN_USD = 0.0  # and keep at least the champion's net retained revenue
BASELINES = ("no_offers", "threshold", "random")


@dataclass
class OfferTrainingResult:
    """What one offer-policy fit produced."""

    run_id: str | None
    metrics: dict[str, float]
    version: str | None = None
    policy: Any = field(default=None, repr=False)  # inference.offers.OfferPolicy


def decision_date(events: Mapping[str, pd.DataFrame]) -> dt.date:
    """The last simulated (usage) month's first day: offers before it train the policy."""
    months = events["usage"]["month"]
    if months.empty:
        raise DataError("usage: no usage rows; simulate or load data first")
    return pd.Timestamp(months.max()).date()


def _fit_metrics(policy: Any) -> dict[str, float]:
    out: dict[str, float] = {}
    eff = policy.effects
    for o in eff.index:
        out[f"effect_{o}"] = float(eff.loc[o, "effect"])
        out[f"accept_rate_{o}"] = float(policy.accept.rates[o])
        out[f"offered_{o}"] = float(eff.loc[o, "offered"])
    out["accept_models_fitted"] = float(len(policy.accept.models))
    return out


def train_and_log_offers(
    settings: Settings,
    events: Mapping[str, pd.DataFrame] | None = None,
    as_of: dt.date | str | None = None,
    params: OfferParams | None = None,
    register: bool = True,
    run_name: str = "fit-offers",
) -> OfferTrainingResult:
    """Fit the policy on the offers before `as_of`, log it (params, fit figures, uplift on the
    decision month when the truth exists) and register it as `paycycle-offers@challenger`.

    Args:
        settings: tracking URI and project paths.
        events: raw tables (default: the project's `data/raw`).
        as_of: decision date (default: `decision_date(events)`).
        params: defaults to `params.yaml` `offers:`.
        register: register the logged policy as the challenger.
    """
    from features import schema
    from features.build import build_features, load_events
    from inference.offer_artifact import load_offer_policy
    from training.offers.export import export_offer_policy
    from training.offers.learning import fit_offer_policy

    params = params or settings.params.offers
    events = load_events(settings.raw_dir) if events is None else events
    day = pd.Timestamp(as_of or decision_date(events)).date()
    tmp = Path(tempfile.mkdtemp(prefix="offers-export-"))
    try:
        with tracking.start_run(settings, run_name, experiment=OFFERS_EXPERIMENT) as run:
            tracking.log_params({**params.model_dump(mode="json"), "as_of": day.isoformat()})
            policy = fit_offer_policy(events, day, params)
            meta = {"as_of": day.isoformat(), "rows": policy.accept.rows}
            export_dir = export_offer_policy(policy, tmp / "scorer", meta)
            served = load_offer_policy(export_dir)
            metrics = _fit_metrics(policy)
            frame = build_features(events, day)
            evaluate = _holdout_evaluator(settings, frame, day, params)
            if evaluate is not None:
                metrics |= evaluate(served)
            tracking.log_dict(
                policy.effects.reset_index().to_dict(orient="records"), "effects.json"
            )
            sample = frame.head(5)[list(schema.COLUMNS)].reset_index(drop=True)
            # the model first, then its metrics (tied to its LoggedModel)
            model_uri = tracking.log_scorer_model(
                export_dir, sample, served(sample), OFFERS_MODEL, metrics=metrics
            )
            version = None
            if register:
                version = registry.register_candidate(
                    settings,
                    model_uri,
                    OFFERS_MODEL,
                    {"run_id": run.info.run_id, "as_of": day.isoformat()},
                )
                tracking.set_tags({"registered_version": version})
        return OfferTrainingResult(run.info.run_id, metrics, version, policy)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _holdout_evaluator(settings: Settings, frame: pd.DataFrame, day: dt.date, params: OfferParams):
    """`policy -> metrics` on the customers at risk on `day` (`frame`), or None without truth."""
    from training.offers.evaluate import compare_policies, load_truth

    truth_dir = settings.truth_dir
    if not (Path(truth_dir) / "hazard").exists():
        return None
    truth = load_truth(truth_dir, frame["customer_id"].to_numpy(), day)

    def evaluate(policy) -> dict[str, float]:
        m = compare_policies(policy, frame, truth.hazard, truth, params.budget, seed=params.seed)
        best = max(m[f"net_revenue_{b}"] for b in BASELINES)
        m["uplift_vs_no_offers"] = m["net_revenue_policy"] - m["net_revenue_no_offers"]
        m["uplift_vs_best_baseline"] = m["net_revenue_policy"] - best
        return m

    return evaluate


def behaviour_checks(frame: pd.DataFrame):
    """`policy -> problems`: no offer when nobody churns; valid P(accept); offers at high risk."""

    def checks(policy) -> list[str]:
        problems = []
        p_acc = policy.accept.predict(frame)
        if not (np.isfinite(p_acc).all() and (p_acc >= 0).all() and (p_acc <= 1).all()):
            problems.append("P(accept) must be finite and in [0, 1]")
        calm = policy.decide(frame, np.zeros(len(frame)), None)
        if calm["offer_type"].notna().any():
            problems.append("offers made to customers with zero churn probability")
        risky = policy.decide(frame, np.full(len(frame), 0.5), None)
        chosen = risky["offer_type"].notna()
        if not chosen.any() or (risky.loc[chosen, "expected_value"] <= 0).any():
            problems.append("no positive-EV offer at 50% churn risk")
        return problems

    return checks


def offers_policy() -> registry.Policy:
    """Beat every baseline by `MIN_UPLIFT_USD`; keep the champion's net revenue (`MARGIN_USD`)."""
    return registry.Policy(
        metric="net_revenue_policy",
        margin=MARGIN_USD,
        floors={"uplift_vs_best_baseline": (">=", MIN_UPLIFT_USD)},
    )


def promote_offers(
    settings: Settings,
    events: Mapping[str, pd.DataFrame] | None = None,
    as_of: dt.date | str | None = None,
) -> registry.Decision:
    """Challenger vs baselines and champion on the same decision month (module docstring).

    Raises:
        DataError: no simulator truth to measure the uplift with, or no challenger.
    """
    from features.build import build_features, load_events

    params = settings.params.offers
    events = load_events(settings.raw_dir) if events is None else events
    day = pd.Timestamp(as_of or decision_date(events)).date()
    frame = build_features(events, day)
    evaluate = _holdout_evaluator(settings, frame, day, params)
    if evaluate is None:
        raise DataError(
            f"{settings.truth_dir}: promoting an offer policy measures its uplift against the "
            "simulator's truth (hazard, offer_response), which is missing"
        )
    return registry.promote(
        OFFERS_MODEL,
        settings,
        evaluate=evaluate,
        policy=offers_policy(),
        checks=behaviour_checks(frame),
    )

"""Our drift rule as Evidently stattests, so the HTML report never contradicts the verdict.

Evidently picks its own test per column by default (Wasserstein or Jensen-Shannon with fixed
thresholds) and renders "drift detected" from it; our verdict (`monitoring.decision`) uses other
statistics and thresholds, so the two could disagree on the same column. Here the rule itself
becomes the Evidently method of every column:

* `FEATURE_TEST` (features): score = the effect size of `monitoring.stats.column_drift` (normed
  Wasserstein or PSI), drifted when effect ≥ the column's threshold (Evidently's per-column
  `threshold`, set to `Thresholds.for_feature`) and p < `alpha`;
* `PREDICTION_TEST` (the model's scores): score = PSI, drifted when PSI ≥
  `prediction_psi_threshold` and p < `alpha`.

The Evidently report runs on a stratified sample, while the verdict is taken on the full windows
(a p-value depends on the sample size). So, inside `verdict_figures(...)`, a column's test returns
the full-window figures the verdict used; a column the verdict did not see (or a call outside that
block) is tested on the data Evidently passes, with the same function. Either way, a column's
flag in the report is the verdict's flag.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field

import pandas as pd

from monitoring import stats

FEATURE_TEST = "paycycle_rule"
PREDICTION_TEST = "paycycle_prediction_rule"


@dataclass(frozen=True)
class RuleFigures:
    """The rule's significance level and, per column, the verdict's (effect, p-value)."""

    alpha: float
    bins: int = 10
    features: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    prediction: tuple[float, float] | None = None


_ACTIVE: ContextVar[RuleFigures | None] = ContextVar("paycycle_rule_figures", default=None)
_registered = False


@contextlib.contextmanager
def verdict_figures(figures: RuleFigures) -> Iterator[None]:
    """Make the stattests answer with the verdict's full-window figures inside the block."""
    token = _ACTIVE.set(figures)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def _kind(feature_type: object) -> str:
    return (
        "numeric" if str(getattr(feature_type, "value", feature_type)) == "num" else "categorical"
    )


def _figures(active: RuleFigures | None) -> RuleFigures:
    from monitoring.decision import Thresholds

    return active or RuleFigures(alpha=Thresholds().alpha, bins=Thresholds().bins)


def feature_rule(
    reference: pd.Series, current: pd.Series, feature_type: object, threshold: float
) -> tuple[float, bool]:
    """Evidently stattest: (effect, effect ≥ threshold and p < alpha) of one feature column."""
    rule = _figures(_ACTIVE.get())
    known = rule.features.get(str(reference.name))
    if known is None:
        drift = stats.column_drift(reference, current, _kind(feature_type), rule.bins)
        known = (drift.effect, drift.p_value)
    effect, p_value = known
    return float(effect), bool(effect >= threshold and p_value < rule.alpha)


def prediction_rule(
    reference: pd.Series, current: pd.Series, feature_type: object, threshold: float
) -> tuple[float, bool]:
    """Evidently stattest: (PSI, PSI ≥ threshold and p < alpha) of the model's scores."""
    rule = _figures(_ACTIVE.get())
    known = rule.prediction
    if known is None:
        drift = stats.column_drift(reference, current, "numeric", rule.bins)
        known = (drift.psi, drift.p_value)
    psi, p_value = known
    return float(psi), bool(psi >= threshold and p_value < rule.alpha)


def register() -> None:
    """Register both stattests with Evidently (once per process; needs evidently imported)."""
    global _registered
    if _registered:
        return
    from evidently.legacy.calculations.stattests.registry import StatTest, register_stattest
    from evidently.legacy.core import ColumnType

    types = [ColumnType.Numerical, ColumnType.Categorical]
    for name, display, func in (
        (FEATURE_TEST, "PayCycle rule: effect ≥ threshold and p < alpha", feature_rule),
        (PREDICTION_TEST, "PayCycle rule: PSI ≥ threshold and p < alpha", prediction_rule),
    ):
        register_stattest(StatTest(name, display, types, default_threshold=0.1), func)
    _registered = True


def figures_from_decision(decision: object, alpha: float, bins: int) -> RuleFigures:
    """`RuleFigures` from a `monitoring.decision.Decision` (its feature table and prediction)."""
    features = {
        str(f["column"]): (float(f["effect"]), float(f["p_value"]))
        for f in getattr(decision, "features", [])
    }
    pred = getattr(decision, "prediction", None)
    prediction = None if not pred else (float(pred["psi"]), float(pred["p_value"]))
    return RuleFigures(alpha=alpha, bins=bins, features=features, prediction=prediction)

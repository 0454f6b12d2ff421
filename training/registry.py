"""Champion/challenger promotion, rollback and history, generic over the registered model.

A model's trainer registers each candidate with `register_candidate` (alias `challenger`). Then
`promote(name, settings, evaluate, policy, checks)` loads the challenger *and* the champion with
`inference.registry.load_scorer` — the loader the service uses — scores both on the same holdout
through `evaluate(scorer) -> metrics`, and moves `champion` only when the challenger

1. clears every absolute floor of `policy` (checked even when there is no champion),
2. beats the `baseline` scorer (the churn model's logistic regression, fitted on the same split)
   on `policy.metric` when `policy.require_beat_baseline`; otherwise the decision only records
   whether it does,
3. beats the champion's `policy.metric` by `policy.margin` (skipped when there is none), and
4. passes `checks(scorer)` (behavioural tests; a list of problems, empty = pass).

The decision and its reason become tags on the challenger's model version. Every decision and
every alias move (who, when, why, metrics) is appended to the history: one finished MLflow run
per decision in the `paycycle-promotions` experiment, tagged with the model name, so two
concurrent promotions each add their own run (nothing is overwritten) and the history has no
length cap. `history` reads those runs oldest first, after the registered-model tags
(`promotion.00001`, ...) that older versions of this module wrote; `rollback` uses it to restore
the previous champion in one step. Everything stays in MLflow, so it works against a remote
server too.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from inference.registry import (
    CHALLENGER,
    CHAMPION,
    alias_version,
    load_scorer,
    registry_read,
)
from paycycle.config import Settings
from paycycle.errors import DataError, RegistryUnavailable
from training import tracking

HISTORY_PREFIX = "promotion."  # legacy: registered-model tags `promotion.00001`, ... (read only)
HISTORY_EXPERIMENT = "paycycle-promotions"
MODEL_TAG = "paycycle.model"
_FIELDS = ("action", "version", "previous", "reason", "who", "when")
_METRIC_GROUPS = {
    "metrics": "candidate.",
    "champion_metrics": "champion.",
    "baseline_metrics": "baseline.",
}
PROMOTED, REFUSED, ROLLBACK = "promoted", "refused", "rollback"

Scorer = Callable[[Any], np.ndarray]
Evaluate = Callable[[Scorer], Mapping[str, float]]
Checks = Callable[[Scorer], list[str]]


@dataclass(frozen=True)
class Policy:
    """How a challenger earns the champion alias.

    Attributes:
        metric: compared with the champion on the same holdout.
        margin: how much better (in `metric`) the challenger must be.
        higher_is_better: direction of `metric`.
        floors: metric → (">=" | "<=", bound) that any champion must meet.
        require_beat_baseline: refuse a candidate whose `metric` does not beat the baseline's
            (when False the decision still records whether it does).
    """

    metric: str
    margin: float
    higher_is_better: bool = True
    floors: dict[str, tuple[str, float]] = field(default_factory=dict)
    require_beat_baseline: bool = False


@dataclass
class Decision:
    """One promotion decision or alias move, as kept in the history."""

    model: str
    action: str  # promoted | refused | rollback
    version: str | None
    previous: str | None
    reason: str
    metrics: dict[str, float] = field(default_factory=dict)
    champion_metrics: dict[str, float] = field(default_factory=dict)
    who: str = ""
    when: str = ""
    baseline_metrics: dict[str, float] = field(default_factory=dict)

    @property
    def promoted(self) -> bool:
        return self.action in (PROMOTED, ROLLBACK)


def actor() -> str:
    """Who decides: `PAYCYCLE_ACTOR` (set by CI and flows), else the OS user."""
    return os.environ.get("PAYCYCLE_ACTOR") or getpass.getuser()


def now() -> str:
    """A decision's timestamp (UTC, seconds)."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def register_candidate(
    settings: Settings,
    model_uri: str,
    name: str,
    tags: Mapping[str, Any] | None = None,
) -> str:
    """Register a logged model as a new version of `name` and point `challenger` at it."""
    version = tracking.register_version(settings, model_uri, name, tags or {})
    tracking.set_alias(settings, name, CHALLENGER, version)
    return version


def _legacy_history(name: str, settings: Settings) -> list[Decision]:
    """Decisions the old layout kept as registered-model tags `promotion.00001`, ..."""
    tags = tracking.model_tags(settings, name)
    keys = sorted(
        k for k in tags if k.startswith(HISTORY_PREFIX) and k[len(HISTORY_PREFIX) :].isdigit()
    )
    known = set(Decision.__dataclass_fields__)
    events = []
    for key in keys:
        raw = json.loads(tags[key])
        events.append(Decision(**{k: v for k, v in raw.items() if k in known}))
    return events


def _to_record(decision: Decision) -> tuple[dict[str, str], dict[str, float]]:
    tags = {MODEL_TAG: decision.model}
    for name in _FIELDS:
        value = getattr(decision, name)
        if value is not None:
            tags[f"paycycle.{name}"] = str(value)
    metrics = {
        prefix + key: value
        for group, prefix in _METRIC_GROUPS.items()
        for key, value in getattr(decision, group).items()
    }
    return tags, metrics


def _from_record(tags: Mapping[str, str], metrics: Mapping[str, float]) -> Decision:
    fields: dict[str, Any] = {name: tags.get(f"paycycle.{name}") for name in _FIELDS}
    for group, prefix in _METRIC_GROUPS.items():
        fields[group] = {
            k.removeprefix(prefix): v for k, v in metrics.items() if k.startswith(prefix)
        }
    fields["reason"] = fields["reason"] or ""
    fields["who"] = fields["who"] or ""
    fields["when"] = fields["when"] or ""
    return Decision(model=tags[MODEL_TAG], **fields)


def history(name: str, settings: Settings) -> list[Decision]:
    """Every decision and alias move for `name`, oldest first.

    The old layout's registered-model tags come first (they all predate the run log), then one
    run per decision from the `paycycle-promotions` experiment.

    Raises:
        RegistryUnavailable: the registry cannot be read.
    """
    with registry_read(settings, f"history of {name}"):
        runs = tracking.read_records(settings, HISTORY_EXPERIMENT, {MODEL_TAG: name})
        return _legacy_history(name, settings) + [_from_record(t, m) for t, m in runs]


def record_decision(settings: Settings, decision: Decision) -> Decision:
    """Append `decision` to the history (its own run) and tag the candidate's version with it."""
    tags, metrics = _to_record(decision)
    tracking.append_record(
        settings, HISTORY_EXPERIMENT, tags, metrics, run_name=f"{decision.model}-{decision.action}"
    )
    if decision.version is not None:
        tracking.set_version_tags(
            settings,
            decision.model,
            decision.version,
            {
                "promotion.decision": decision.action,
                "promotion.reason": decision.reason,
                "promotion.when": decision.when,
                "promotion.who": decision.who,
            },
        )
    return decision


def check_floors(metrics: Mapping[str, float], policy: Policy) -> list[str]:
    """Floors `metrics` misses, as readable reasons."""
    problems = []
    for key, (op, bound) in policy.floors.items():
        value = metrics.get(key)
        if value is None or not np.isfinite(value):
            problems.append(f"{key} missing")
        elif (op == ">=" and value < bound) or (op == "<=" and value > bound):
            problems.append(f"{key} {value:.4f} fails floor {op} {bound:g}")
    return problems


def _round(metrics: Mapping[str, float]) -> dict[str, float]:
    return {k: round(float(v), 5) for k, v in metrics.items()}


def promote(
    name: str,
    settings: Settings,
    evaluate: Evaluate,
    policy: Policy,
    checks: Checks | None = None,
    version: str | None = None,
    baseline: Scorer | None = None,
) -> Decision:
    """Decide whether the challenger (or `version`) becomes champion, and record why.

    Args:
        name: registered model name.
        settings: tracking URI.
        evaluate: scorer → holdout metrics; called for the challenger and the champion alike.
        policy: floors, comparison metric and margin.
        checks: scorer → problems (behavioural tests through the served scorer).
        version: candidate version; defaults to the `challenger` alias.
        baseline: a simple model fitted on the same split (scored by `evaluate` too); the
            candidate must beat its `policy.metric` when `policy.require_beat_baseline`, else the
            reason records whether it does.

    Returns:
        The decision (also in `history` and as tags on the candidate's version).

    Raises:
        RegistryUnavailable: the registry cannot be read; nothing is decided or moved.
    """
    try:  # an unreadable registry is not "no champion": refuse rather than skip the comparison
        candidate = version or alias_version(settings, name, CHALLENGER)
        champion = alias_version(settings, name, CHAMPION)
    except RegistryUnavailable as exc:
        raise RegistryUnavailable(f"promote {name}: refused, {exc}") from exc
    if candidate is None:
        raise DataError(f"{name}@{CHALLENGER}: no challenger registered; train one first")
    scorer, _ = load_scorer(name, settings=settings, version=candidate)
    metrics = dict(evaluate(scorer))
    base = Decision(
        name, REFUSED, candidate, champion, "", _round(metrics), who=actor(), when=now()
    )
    if champion == candidate:
        base.reason = f"version {candidate} is already the champion"
        return record_decision(settings, base)
    problems = check_floors(metrics, policy)
    if problems:
        base.reason = "below the floor: " + "; ".join(problems)
        return record_decision(settings, base)
    note = ""
    if baseline is not None:
        base.baseline_metrics = _round(evaluate(baseline))
        note, beaten = _against_baseline(metrics, base.baseline_metrics, policy)
        if not beaten and policy.require_beat_baseline:
            base.reason = f"{note} (promotion.require_beat_baseline)"
            return record_decision(settings, base)
    if champion is not None:
        champ_scorer, _ = load_scorer(name, settings=settings, version=champion)
        champ_metrics = dict(evaluate(champ_scorer))
        base.champion_metrics = _round(champ_metrics)
        sign = 1 if policy.higher_is_better else -1
        gain = sign * (metrics[policy.metric] - champ_metrics[policy.metric])
        if gain < policy.margin:
            base.reason = (
                f"{policy.metric} {metrics[policy.metric]:.4f} does not beat champion v{champion} "
                f"({champ_metrics[policy.metric]:.4f}) by the margin {policy.margin:g}"
            ) + (f"; {note}" if note else "")
            return record_decision(settings, base)
        base.reason = (
            f"{policy.metric} {metrics[policy.metric]:.4f} beats champion v{champion} "
            f"({champ_metrics[policy.metric]:.4f}) by {gain:.4f} ≥ {policy.margin:g}; floors and "
            "checks pass"
        )
    else:
        base.reason = "no champion yet; floors and checks pass"
    if checks is not None and (failed := checks(scorer)):
        base.reason = "behavioural checks failed: " + "; ".join([*failed, note] if note else failed)
        return record_decision(settings, base)
    # Another promotion (or a rollback) may have moved the alias while this one evaluated: the
    # decision was against a champion that is no longer it. MLflow has no compare-and-set, so
    # this narrows the race from the evaluation (seconds) to the two calls below (milliseconds).
    with registry_read(settings, f"promote {name}: refused"):
        current = alias_version(settings, name, CHAMPION)
    if current != champion:
        base.reason = (
            f"the champion moved from v{champion} to v{current} while v{candidate} was "
            "evaluated; promote again to compare against the new champion"
        )
        return record_decision(settings, base)
    tracking.set_alias(settings, name, CHAMPION, candidate)
    base.action = PROMOTED
    base.reason += f"; {note}" if note else ""
    return record_decision(settings, base)


def _against_baseline(
    metrics: Mapping[str, float], baseline: Mapping[str, float], policy: Policy
) -> tuple[str, bool]:
    """(a sentence for the reason, whether the candidate beats the baseline on `policy.metric`)."""
    key = policy.metric
    sign = 1 if policy.higher_is_better else -1
    gain = sign * (metrics[key] - baseline[key])
    figures = f"{key} {metrics[key]:.4f} vs baseline {baseline[key]:.4f}"
    if gain > 0:
        return f"beats the baseline by {gain:.4f} ({figures})", True
    return f"does not beat the baseline by {-gain:.4f} ({figures})", False


def champion_lineage(events: list[Decision]) -> list[str]:
    """Champion versions in order, with rolled-back ones popped off."""
    stack: list[str] = []
    for e in events:
        if e.action == PROMOTED and e.version:
            stack.append(e.version)
        elif e.action == ROLLBACK and stack:
            stack.pop()
    return stack


def rollback(name: str, settings: Settings, reason: str = "manual rollback") -> Decision:
    """Point `champion` back at the version it held before the latest promotion.

    Raises:
        DataError: there is no earlier champion to go back to.
        RegistryUnavailable: the registry cannot be read or written; nothing was moved then
            (a failure after the alias moved says so: the history lacks that one entry).
    """
    with registry_read(settings, f"rollback {name}: refused"):
        lineage = champion_lineage(history(name, settings))
        current = alias_version(settings, name, CHAMPION)
    if len(lineage) < 2:
        raise DataError(f"{name}: no previous champion to roll back to")
    target = lineage[-2]
    with registry_read(settings, f"rollback {name}: refused"):
        tracking.set_alias(settings, name, CHAMPION, target)
    decision = Decision(
        name,
        ROLLBACK,
        target,
        current,
        f"{reason}: champion v{current} → v{target}",
        who=actor(),
        when=now(),
    )
    with registry_read(settings, f"rollback {name}: champion moved to v{target}, not recorded"):
        return record_decision(settings, decision)


def history_rows(events: list[Decision]) -> list[dict[str, Any]]:
    """History as flat rows for tables and JSON."""
    return [
        {
            "when": e.when,
            "who": e.who,
            "action": e.action,
            "version": e.version,
            "previous": e.previous,
            "reason": e.reason,
            "metrics": e.metrics,
            "baseline_metrics": e.baseline_metrics,
        }
        for e in events
    ]

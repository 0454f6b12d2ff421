"""The rules of a safe rollout, as pure functions: who sees the challenger, when it is rolled
back, when it moves on.

- `bucket(customer_id)` puts each customer at a stable point in [0, 100): a stage with percent
  `p` sends the customers below `p` to the challenger, so one customer always sees one model and
  the 5% of one stage stay inside the 25% of the next.
- `breaches(readings, limits)` names every live guard the challenger's readings fail (error
  rate, p99 latency of its model calls, shift of its scores against a reference, realized
  performance when a hook supplies it); an empty list means healthy.
- `next_step(...)` is the stage machine the driver runs: hold, advance to the next stage after
  its baking period, or promote after the last one. It never advances on stale readings.

The service (`serving/rollout.py`) and the driver (`training/rollout.py`) call these; tests call
them directly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from paycycle.config import RolloutParams, RolloutStage

RUNNING, ROLLED_BACK, ABORTED, PROMOTED = "running", "rolled_back", "aborted", "promoted"
ENDED = (ROLLED_BACK, ABORTED, PROMOTED)
HOLD, ADVANCE, PROMOTE = "hold", "advance", "promote"


def bucket(customer_id: object) -> float:
    """A customer's stable place in [0, 100): the same on every worker, restart and machine."""
    digest = hashlib.blake2b(str(customer_id).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 * 100


def in_canary(customer_ids: Sequence[object], percent: float) -> np.ndarray:
    """Boolean mask: which of these customers the challenger answers at `percent`.

    A request without a customer id cannot be kept on one model, so below 100% it stays with
    the champion.
    """
    if percent <= 0:
        return np.zeros(len(customer_ids), dtype=bool)
    if percent >= 100:
        return np.ones(len(customer_ids), dtype=bool)
    picked = (c is not None and bucket(c) < percent for c in customer_ids)
    return np.fromiter(picked, bool, len(customer_ids))


def ks_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov distance (largest gap between the empirical CDFs), 0..1."""
    a, b = np.sort(np.asarray(a, float)), np.sort(np.asarray(b, float))
    if len(a) == 0 or len(b) == 0:
        return 0.0
    grid = np.concatenate([a, b])
    gap = np.searchsorted(a, grid, side="right") / len(a) - np.searchsorted(
        b, grid, side="right"
    ) / len(b)
    return float(np.max(np.abs(gap)))


@dataclass(frozen=True)
class Readings:
    """What the service measured on the challenger path over the guard window.

    `shift` is None until `min_scores` challenger scores exist; `realized` (e.g. AUC ratio vs the
    champion once labels arrive, from the monitoring work) stays None until a hook fills it.
    """

    calls: int = 0
    errors: int = 0
    p99_ms: float = 0.0
    scores: int = 0
    shift: float | None = None
    reference: str = "champion-live"
    realized: float | None = None

    @property
    def error_rate(self) -> float:
        return self.errors / self.calls if self.calls else 0.0

    def as_dict(self) -> dict[str, float | int | str | None]:
        return {**asdict(self), "error_rate": round(self.error_rate, 4)}


def measure(
    calls: int,
    errors: int,
    latencies_s: np.ndarray,
    scores: np.ndarray,
    reference: np.ndarray,
    limits: RolloutParams,
    reference_name: str = "champion-live",
) -> Readings:
    """Readings from the raw window: call counts, model-call latencies and both score sets."""
    p99 = float(np.percentile(latencies_s, 99) * 1000) if len(latencies_s) else 0.0
    enough = len(scores) >= limits.min_scores and len(reference) >= limits.min_scores
    shift = round(ks_distance(scores, reference), 4) if enough else None
    return Readings(calls, errors, round(p99, 3), len(scores), shift, reference_name)


def breaches(
    readings: Readings, limits: RolloutParams, min_realized: float | None = None
) -> list[str]:
    """Every guard the readings fail, as one readable reason each (empty: healthy).

    `min_realized` is the hook for realized performance (labels joined on prediction ids by the
    monitoring work): checked once a caller fills `readings.realized`.
    """
    found = []
    if readings.calls >= limits.min_requests:
        if readings.error_rate > limits.max_error_rate:
            found.append(
                f"error rate {readings.error_rate:.3f} > rollout.max_error_rate "
                f"{limits.max_error_rate:g} ({readings.errors}/{readings.calls} challenger calls)"
            )
        if readings.p99_ms > limits.max_p99_ms:
            found.append(f"p99 {readings.p99_ms:.1f} ms > rollout.max_p99_ms {limits.max_p99_ms:g}")
    if readings.shift is not None and readings.shift > limits.max_shift:
        found.append(
            f"score shift (KS vs {readings.reference}) {readings.shift:.3f} > rollout.max_shift "
            f"{limits.max_shift:g} over {readings.scores} scores"
        )
    realized = readings.realized
    if min_realized is not None and realized is not None and realized < min_realized:
        found.append(f"realized performance {readings.realized:.3f} < {min_realized:g}")
    return found


@dataclass(frozen=True)
class Step:
    """The driver's next move: `hold`, `advance` (to `stage`) or `promote`; `why` for the log."""

    action: str
    stage: int
    why: str


def next_step(
    stage: int,
    stages: Sequence[RolloutStage],
    baked_s: float,
    fresh_readings: bool,
    healthy_calls: int,
) -> Step:
    """Advance only when the stage baked its full period, the service reported after the stage
    began, and (past shadow) the challenger actually answered traffic in it.

    Args:
        stage: index of the current stage.
        stages: `rollout.stages`.
        baked_s: seconds since the stage began.
        fresh_readings: the service wrote readings after the stage began.
        healthy_calls: challenger calls in the readings (a canary nobody hit proves nothing).
    """
    current = stages[stage]
    if baked_s < current.bake_s:
        return Step(HOLD, stage, f"{current.name} baking {baked_s:.0f}/{current.bake_s:g} s")
    if not fresh_readings:
        return Step(HOLD, stage, f"{current.name}: waiting for the service's readings")
    if healthy_calls == 0:
        return Step(HOLD, stage, f"{current.name}: no challenger traffic yet")
    if stage + 1 < len(stages):
        return Step(ADVANCE, stage + 1, f"{current.name} passed; now {stages[stage + 1].name}")
    return Step(PROMOTE, stage, f"{current.name} passed: last stage")

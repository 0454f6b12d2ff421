"""Simulator contract: determinism, truth files, and invariants of the generated ledger."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paycycle.config import SCENARIOS
from paycycle.errors import DataError
from paycycle.sim.simulator import RAW_TABLES, TRUTH_TABLES, SimSpec, simulate, simulate_chunk
from paycycle.tables import read_table


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_same_seed_same_bytes_different_seed_different(tmp_path: Path) -> None:
    spec = SimSpec(customers=1_500, months=6, seed=3, chunk_customers=700)
    a, b, c = (tmp_path / x for x in "abc")
    simulate(spec, a / "raw", a / "truth")
    simulate(spec, b / "raw", b / "truth")
    simulate(
        SimSpec(customers=1_500, months=6, seed=4, chunk_customers=700), c / "raw", c / "truth"
    )
    assert digest(a) == digest(b)
    assert len(digest(a)) == len(digest(c))
    assert (
        digest(a)["raw/payments/part-00000.parquet"] != digest(c)["raw/payments/part-00000.parquet"]
    )


def test_tables_and_truth_present_with_shapes(small_sim: Path) -> None:
    for name in RAW_TABLES:
        assert len(read_table(small_sim / "raw", name)) > 0, name
    for name in TRUTH_TABLES:
        assert len(read_table(small_sim / "truth", name)) > 0, name
    customers = read_table(small_sim / "raw", "customers")
    truth = read_table(small_sim / "truth", "customers")
    assert set(truth["customer_id"]) == set(customers["customer_id"])
    hazard = read_table(small_sim / "truth", "hazard")
    assert hazard["hazard"].between(0, 1).all()
    assert 0.01 < hazard["hazard"].mean() < 0.15  # a plausible monthly churn rate
    offers = read_table(small_sim / "truth", "offer_response")
    assert len(offers) == 5 * len(customers)
    assert offers["p_accept"].between(0, 1).all()
    assert (offers["hazard_multiplier"] <= 1).all()


def test_seed_signals_drive_churn(small_sim: Path) -> None:
    """The latent hazard must respond to the seed's three signals the way a business expects."""
    from features.build import attach_oracle, build_features, load_events

    events = load_events(small_sim / "raw")
    feats = attach_oracle(build_features(events, "2025-10-01"), small_sim / "truth")
    corr = feats[["failed_payments", "usage_pattern", "subscription_duration", "oracle_p"]].corr(
        method="spearman"
    )["oracle_p"]
    assert corr["failed_payments"] > 0.05
    assert corr["usage_pattern"] < -0.05
    assert corr["subscription_duration"] < -0.05


def test_ledger_invariants(small_sim: Path) -> None:
    raw = small_sim / "raw"
    inv, pay = read_table(raw, "invoices"), read_table(raw, "payments")
    subs = read_table(raw, "subscriptions")
    assert (inv["amount"] > 0).all() and (pay["amount"] > 0).all()
    assert inv["invoice_id"].is_unique and pay["payment_id"].is_unique
    assert set(pay["invoice_id"]) <= set(inv["invoice_id"])
    paid = inv.dropna(subset=["paid_at"])
    assert (paid["paid_at"] >= paid["due_date"]).all()
    live = subs[subs["status"] != "cancelled"]
    assert (live["next_charge_at"] > live["start_date"]).all()
    dead = subs[subs["status"] == "cancelled"]
    assert dead["next_charge_at"].isna().all() and dead["cancelled_at"].notna().all()
    last_due = inv.groupby("customer_id")["due_date"].max()
    cancelled_at = dead.set_index("customer_id")["cancelled_at"]
    both = last_due.reindex(cancelled_at.index).dropna()
    assert (both <= cancelled_at.loc[both.index]).all()  # no charge after cancellation


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 300),
    months=st.integers(2, 8),
    seed=st.integers(0, 2**31),
    scenario=st.sampled_from(SCENARIOS),
)
def test_properties_hold_for_any_spec(n: int, months: int, seed: int, scenario: str) -> None:
    spec = SimSpec(customers=n, months=months, seed=seed, scenario=scenario)
    t = simulate_chunk(spec, 0, 1, n)
    assert (t["invoices"]["amount"] > 0).all()
    assert (t["usage"]["units"] >= 0).all()
    assert t["usage"]["active_days"].between(0, 31).all()
    subs = t["subscriptions"]
    live = subs[subs["status"] != "cancelled"]
    assert (live["next_charge_at"] > live["start_date"]).all()
    cancelled = subs[subs["status"] == "cancelled"]
    assert cancelled["next_charge_at"].isna().all()
    inv = t["invoices"].merge(cancelled[["customer_id", "cancelled_at"]], on="customer_id")
    assert (inv["due_date"] <= inv["cancelled_at"]).all()


def test_scenarios_equal_baseline_before_the_shift(tmp_path: Path) -> None:
    base = simulate_chunk(SimSpec(customers=800, months=6, seed=5), 0, 1, 800)
    for scenario in ("price_shock", "usage_drop", "payment_outage", "concept_shift"):
        shifted = simulate_chunk(
            SimSpec(customers=800, months=6, seed=5, scenario=scenario), 0, 1, 800
        )
        cut = pd.Timestamp("2025-06-01")
        for table, col in (("usage", "month"), ("invoices", "due_date")):
            a = base[table][base[table][col] < cut].reset_index(drop=True)
            b = shifted[table][shifted[table][col] < cut].reset_index(drop=True)
            pd.testing.assert_frame_equal(a, b)


@pytest.mark.parametrize(
    ("scenario", "check"),
    [
        (
            "price_shock",
            lambda b, s: s["invoices"]["amount"].mean() > 1.2 * b["invoices"]["amount"].mean(),
        ),
        ("usage_drop", lambda b, s: s["usage"]["units"].sum() < 0.95 * b["usage"]["units"].sum()),
        (
            "payment_outage",
            lambda b, s: (
                (s["payments"]["status"] == "failed").sum()
                > 2 * (b["payments"]["status"] == "failed").sum()
            ),
        ),
    ],
)
def test_scenarios_shift_the_last_month(scenario: str, check) -> None:
    def last(t: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
        cut = pd.Timestamp("2025-06-01")
        return {
            "usage": t["usage"][t["usage"]["month"] >= cut],
            "invoices": t["invoices"][t["invoices"]["due_date"] >= cut],
            "payments": t["payments"][t["payments"]["attempted_at"] >= cut],
        }

    base = simulate_chunk(SimSpec(customers=4_000, months=6, seed=5), 0, 1, 4_000)
    shifted = simulate_chunk(
        SimSpec(customers=4_000, months=6, seed=5, scenario=scenario), 0, 1, 4_000
    )
    assert check(last(base), last(shifted))


def test_segment_mix_brings_a_new_channel() -> None:
    t = simulate_chunk(
        SimSpec(customers=3_000, months=6, seed=5, scenario="segment_mix"), 0, 1, 3_000
    )
    late = t["customers"][t["customers"]["signup_date"] >= pd.Timestamp("2025-06-01")]
    assert (late["acquisition_channel"] == "affiliate").mean() > 0.5
    base = simulate_chunk(SimSpec(customers=3_000, months=6, seed=5), 0, 1, 3_000)
    assert (base["customers"]["acquisition_channel"] == "affiliate").sum() == 0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"customers": 0}, "customers"),
        ({"months": 1}, "months"),
        ({"scenario": "meteor"}, "scenario"),
        ({"shift_month": 9}, "shift_month"),
    ],
)
def test_bad_spec_names_the_field(kwargs: dict, field: str) -> None:
    spec = {"customers": 10, "months": 6, "seed": 1, **kwargs}
    with pytest.raises(DataError, match=field):
        SimSpec(**spec)


def test_hazard_is_the_oracle_for_the_label(small_sim: Path) -> None:
    """Mean true hazard matches the observed 30-day churn rate (the truth is honest)."""
    from features.build import attach_oracle, build_features, build_labels, load_events

    events = load_events(small_sim / "raw")
    rates = []
    for as_of in ("2025-06-01", "2025-08-01", "2025-10-01"):
        f = attach_oracle(build_features(events, as_of), small_sim / "truth")
        y = build_labels(events, as_of).reindex(f["customer_id"]).to_numpy()
        rates.append((y.mean(), f["oracle_p"].mean()))
    observed, expected = np.mean(rates, axis=0)
    assert abs(observed - expected) < 0.25 * expected

"""On 10k simulated customers over 60 days, the notices sent equal the set computed
independently in pandas from the raw tables, for every kind (real PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from notify.channels import FileChannel, read_outbox_file
from notify.cycles import due_notices
from notify.outbox import deliver, enqueue, outbox_counts
from paycycle.config import NotifyParams
from paycycle.loader import load_raw
from paycycle.sim.simulator import SimSpec, simulate
from paycycle.store import make_engine, upgrade
from paycycle.tables import read_table

pytestmark = [pytest.mark.postgres, pytest.mark.integration, pytest.mark.slow]
START = dt.date(2025, 1, 1)
DAYS = [START + dt.timedelta(days=d) for d in range(60)]
PARAMS = NotifyParams()


def recommendations_from(adoptions: pd.DataFrame) -> pd.DataFrame:
    """A stand-in recommender output: on each adoption day, score the adopted item."""
    rng = np.random.default_rng(3)
    return pd.DataFrame(
        {
            "customer_id": adoptions["customer_id"],
            "as_of": adoptions["adopted_at"].dt.date,
            "item": adoptions["item"],
            "score": rng.random(len(adoptions)),
            "model_version": "7",
        }
    )


def expected_notices(raw: Path, recs: pd.DataFrame, offers: pd.DataFrame) -> pd.DataFrame:
    """The notice set for DAYS, written from the rules against the raw Parquet tables."""
    subs = read_table(raw, "subscriptions")
    pays = read_table(raw, "payments")
    out = []
    days = pd.DataFrame({"day": pd.to_datetime(DAYS)})
    grid = subs.merge(days, how="cross")
    live = (grid["start_date"] <= grid["day"]) & (
        grid["cancelled_at"].isna() | (grid["cancelled_at"] > grid["day"])
    )
    # upcoming charge: monthly, charge N days ahead on the billing day, no accepted free month
    charge = grid["day"] + pd.Timedelta(days=PARAMS.upcoming_days)
    up = grid[
        live
        & (grid["cycle"] == "monthly")
        & (grid["billing_day"] == charge.dt.day)
        & (grid["start_date"] < charge)
    ].assign(cycle=charge)
    free = offers[(offers["offer_type"] == "free_month") & offers["accepted"]]
    free_keys = set(zip(free["customer_id"], free["offered_at"].dt.to_period("M"), strict=True))
    up = up[
        [
            (c, p) not in free_keys
            for c, p in zip(up["customer_id"], up["cycle"].dt.to_period("M"), strict=True)
        ]
    ]
    out.append(up.assign(kind="upcoming_charge")[["customer_id", "kind", "cycle"]])
    # renewals: annual anniversaries L days ahead
    for lead in PARAMS.renewal_days:
        renew = grid["day"] + pd.Timedelta(days=lead)
        hit = grid[
            live
            & (grid["cycle"] == "annual")
            & (grid["start_date"].dt.month == renew.dt.month)
            & (grid["start_date"].dt.day == renew.dt.day)
            & (grid["start_date"].dt.year < renew.dt.year)
        ].assign(cycle=renew, kind=f"renewal_{lead}d")
        out.append(hit[["customer_id", "kind", "cycle"]])
    # dunning: every failed attempt on a day; the last retry failing puts the sub at risk
    failed = pays[(pays["status"] == "failed") & pays["attempted_at"].isin(days["day"])]
    kind = np.where(
        failed["attempt"] < len(PARAMS.retry_days), "payment_failed", "subscription_at_risk"
    )
    out.append(
        pd.DataFrame(
            {"customer_id": failed["customer_id"], "kind": kind, "cycle": failed["attempted_at"]}
        )
    )
    # recommendations and offers: at most one per customer per month
    for frame, name in ((recs, "plan_recommendation"), (offers, "retention_offer")):
        on = pd.to_datetime(frame["as_of"])
        frame = frame[on.isin(days["day"])]
        month = pd.to_datetime(frame["as_of"]).dt.to_period("M").dt.to_timestamp()
        monthly = pd.DataFrame({"customer_id": frame["customer_id"], "kind": name, "cycle": month})
        out.append(monthly.drop_duplicates())
    exp = pd.concat(out, ignore_index=True)
    exp["key"] = (
        exp["customer_id"].astype(str)
        + ":"
        + exp["kind"]
        + ":"
        + exp["cycle"].dt.strftime("%Y-%m-%d")
    )
    return exp


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("truth")
    simulate(
        SimSpec(customers=10_000, months=3, seed=41, chunk_customers=10_000),
        root / "raw",
        root / "t",
    )
    return root / "raw"


def test_sixty_days_of_notices_match_the_independent_truth(world: Path, pg_url: str, tmp_path):
    upgrade(pg_url)
    engine = make_engine(pg_url)
    load_raw(engine, world)
    recs = recommendations_from(read_table(world, "adoptions"))
    offers = read_table(world, "offers")
    policy = offers.assign(as_of=offers["offered_at"].dt.date)[
        ["customer_id", "as_of", "offer_type"]
    ]
    channel = FileChannel(tmp_path)
    for day in DAYS:
        due = due_notices(engine, day, PARAMS, recommendations=recs, offers=policy)
        assert due["error"].isna().all()
        enqueue(engine, due, "file")
        deliver(engine, channel, PARAMS)
    sent = pd.DataFrame(read_outbox_file(tmp_path / "notices.jsonl"))
    assert not sent["dedup_key"].duplicated().any()
    counts = outbox_counts(engine)
    assert set(counts["status"]) == {"sent"}
    expected = expected_notices(world, recs, offers.assign(as_of=offers["offered_at"]))
    assert not expected["key"].duplicated().any()
    kinds = sorted(set(expected["kind"]) | set(sent["kind"]))
    assert len(kinds) == 7  # every kind occurs
    for kind in kinds:
        got = set(sent.loc[sent["kind"] == kind, "dedup_key"])
        want = set(expected.loc[expected["kind"] == kind, "key"])
        assert got == want, f"{kind}: {len(got - want)} unexpected, {len(want - got)} missing"
    # the store's facts reach the text: failed-payment amounts equal the payment rows
    pays = read_table(world, "payments")
    failed = sent[sent["kind"] == "payment_failed"].head(50)
    for rec in failed.to_dict("records"):
        row = pays[(pays["invoice_id"] == rec["payload"]["invoice_id"])].iloc[0]
        assert rec["payload"]["amount"] == pytest.approx(row["amount"])
    # ground truth cross-check: every monthly invoice (not the signup one) in the window that
    # really was charged had an upcoming-charge notice N days before
    inv = read_table(world, "invoices")
    subs = read_table(world, "subscriptions")[["subscription_id", "cycle", "start_date"]]
    inv = inv.merge(subs, on="subscription_id")
    lead = pd.Timedelta(days=PARAMS.upcoming_days)
    window = inv[
        (inv["cycle"] == "monthly")
        & (inv["due_date"] - lead >= pd.Timestamp(DAYS[0]))
        & (inv["due_date"] - lead <= pd.Timestamp(DAYS[-1]))
        & (inv["start_date"] <= inv["due_date"] - lead)
    ]
    charged = set(
        window["customer_id"].astype(str)
        + ":upcoming_charge:"
        + window["due_date"].dt.strftime("%Y-%m-%d")
    )
    assert len(charged) > 5_000
    assert charged <= set(sent.loc[sent["kind"] == "upcoming_charge", "dedup_key"])
    engine.dispose()

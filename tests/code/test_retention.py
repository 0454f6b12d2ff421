"""Retention: dunning rules and caps, signed links, card-expiry notices, saves, uplift truth."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from notify.links import UPDATE_PAYMENT, LinkError, sign, verify
from paycycle import catalog
from paycycle.config import DunningParams, NotifyParams, RetentionParams
from paycycle.tables import read_table
from retention.dunning import paddle_like, plan_dunning, stripe_like
from retention.dunning_eval import evaluate_plans

CODES = list(catalog.DECLINE_CODES)
HARD = [c for c, (_, h) in catalog.DECLINE_CODES.items() if h]
SECRET = "s" * 32
API_TOKEN = "api-token-for-tests-0123456789"
T0 = dt.datetime(2025, 3, 1, tzinfo=dt.UTC)


@settings(max_examples=200, deadline=None)
@given(
    code=st.sampled_from(CODES),
    day=st.dates(dt.date(2024, 1, 1), dt.date(2027, 12, 31)),
    retries=st.integers(0, 12),
    days=st.integers(1, 60),
    gap=st.integers(1, 7),
)
def test_plan_respects_caps_and_never_retries_hard(code, day, retries, days, gap) -> None:
    p = DunningParams(max_retries=retries, max_days=days, min_gap_days=gap)
    plan = plan_dunning(code, day, p)
    if code in HARD:
        assert plan.retry_days == () and plan.ask_new_card
    else:
        assert len(plan.retry_days) <= retries
        assert all(1 <= d <= days for d in plan.retry_days)
        assert list(plan.retry_days) == sorted(set(plan.retry_days))
        assert all(b - a >= gap for a, b in zip(plan.retry_days, plan.retry_days[1:], strict=False))
    assert plan.end_day == days and plan.end_action == p.end_action


def test_hard_declines_never_retried_on_the_truth(small_sim: Path) -> None:
    failures = read_table(small_sim / "truth", "dunning")
    out = evaluate_plans(failures, lambda c, d: plan_dunning(c, d, DunningParams()))
    hard = failures["decline_code"].isin(HARD).to_numpy()
    assert hard.any()
    # a hard decline gets at most the one charge made after the customer adds a new card
    assert out.attempts[hard].max() <= 1
    updated = failures["card_update_day"].notna().to_numpy()
    assert (out.attempts[hard & ~updated] == 0).all()


def test_policy_beats_fixed_schedules_with_fewer_attempts(small_sim: Path) -> None:
    failures = read_table(small_sim / "truth", "dunning")
    amount = failures["amount_usd"].to_numpy(float)
    pol = evaluate_plans(failures, lambda c, d: plan_dunning(c, d, DunningParams())).summary(amount)
    for base in (stripe_like, paddle_like):
        b = evaluate_plans(failures, base).summary(amount)
        assert pol["recovered_usd"] > b["recovered_usd"]
        assert pol["attempts_per_failure"] <= b["attempts_per_failure"]


def test_links_round_trip_and_refuse_tampering_and_expiry() -> None:
    token = sign(42, UPDATE_PAYMENT, T0 + dt.timedelta(hours=1), SECRET)
    assert verify(token, SECRET, UPDATE_PAYMENT, now=T0).customer_id == 42
    body, mac = token.split(".")
    forged = sign(43, UPDATE_PAYMENT, T0 + dt.timedelta(hours=1), SECRET).split(".")[0]
    for bad in (f"{forged}.{mac}", f"{body}.{mac[:-2]}AA", "garbage", ""):
        with pytest.raises(LinkError):
            verify(bad, SECRET, UPDATE_PAYMENT, now=T0)
    with pytest.raises(LinkError, match="expired"):
        verify(token, SECRET, UPDATE_PAYMENT, now=T0 + dt.timedelta(hours=2))
    with pytest.raises(LinkError, match="signature"):
        verify(token, "t" * 32, UPDATE_PAYMENT, now=T0)
    with pytest.raises(LinkError, match="issued for"):
        claims = {"c": 42, "p": "another_purpose", "exp": int(T0.timestamp()) + 3600}
        verify(signed_claims(claims, SECRET), SECRET, UPDATE_PAYMENT, now=T0)


def signed_claims(claims: object, secret: str) -> str:
    """A token with a valid MAC over any claims (what a holder of the secret could sign)."""
    import json

    from notify.links import _b64, _mac

    body = _b64(json.dumps(claims).encode())
    return f"{body}.{_mac(secret, body)}"


async def _call(app, path: str, query: str = "") -> tuple[int, bytes]:
    import httpx

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        r = await client.get(f"{path}?{query}" if query else path)
        return r.status_code, r.content


def test_payment_method_endpoint_refuses_tampered_token(monkeypatch) -> None:
    import asyncio

    from serving.guard import Guard

    monkeypatch.setenv("PAYCYCLE_API_TOKEN", API_TOKEN)
    monkeypatch.setenv("PAYCYCLE_LINK_SECRET", SECRET)

    async def inner(scope, receive, send):  # the BentoML app behind the guard
        raise AssertionError("the self-serve route must be answered by the guard")

    guard = Guard(inner)
    now = dt.datetime.now(dt.UTC)
    token = sign(7, UPDATE_PAYMENT, now + dt.timedelta(hours=1), SECRET)
    status, body = asyncio.run(_call(guard, "/payment-method", f"token={token}"))
    assert status == 200 and b'"customer_id": 7' in body
    body_part, mac = token.split(".")
    tampered = body_part[:-1] + ("A" if body_part[-1] != "A" else "B") + "." + mac
    for query in (f"token={tampered}", "", "token=x.y"):
        assert asyncio.run(_call(guard, "/payment-method", query))[0] == 403
    expired = sign(7, UPDATE_PAYMENT, now - dt.timedelta(seconds=1), SECRET)
    assert asyncio.run(_call(guard, "/payment-method", f"token={expired}"))[0] == 403


@pytest.fixture()
def store(project):
    from paycycle.loader import load_raw
    from paycycle.store import make_engine, upgrade

    upgrade(project.db_url)
    engine = make_engine(project.db_url)
    load_raw(engine, project.raw_dir)
    yield engine
    engine.dispose()


def test_card_expiring_notice_precedes_first_expired_card_failure(project, store) -> None:
    from notify.cycles import CARD_EXPIRING, due_notices

    r = RetentionParams()
    pays = read_table(project.raw_dir, "payments")
    subs = read_table(project.raw_dir, "subscriptions").set_index("customer_id")
    first = (
        pays[(pays["attempt"] == 0) & (pays["decline_code"] == "expired_card")]
        .groupby("customer_id")["attempted_at"]
        .min()
    )
    start = pd.Timestamp("2025-02-01")
    # the card expired at the month end before the failure; warn N days before that, when the
    # subscription had already started (a card expired on entry cannot be warned about)
    notice_day = (first.dt.to_period("M").dt.to_timestamp() - pd.Timedelta(days=1)) - pd.Timedelta(
        days=r.card_expiring_days
    )
    ok = (first >= start) & (subs["start_date"].reindex(first.index) <= notice_day)
    cases = notice_day[ok]
    assert len(cases) >= 10
    seen: dict[int, dt.date] = {}
    for day in sorted(set(cases.dt.date)):
        due = due_notices(store, day, NotifyParams(), retention=r, links=True)
        card = due[due["kind"] == CARD_EXPIRING]
        assert card["error"].isna().all()
        assert all(p["links"] == {"update_payment_url": UPDATE_PAYMENT} for p in card["payload"])
        for cid in card["customer_id"]:
            seen.setdefault(int(cid), day)
    for cid in cases.index:
        assert cid in seen, f"customer {cid}: no card_expiring notice"
        assert pd.Timestamp(seen[cid]) < first[cid]


def test_dunning_notices_carry_signed_links_and_render(project, store) -> None:
    from notify.cycles import due_notices
    from notify.links import LinkSigner, with_links
    from notify.render import render

    pays = read_table(project.raw_dir, "payments")
    day = pays.loc[pays["decline_code"].isin(HARD), "attempted_at"].iloc[0].date()
    signer = LinkSigner(SECRET, "https://b.example", dt.timedelta(hours=72))
    due = due_notices(store, day, NotifyParams(), retention=RetentionParams(), links=True)
    dunning = due[due["kind"].isin(["payment_failed", "subscription_at_risk"])]
    assert len(dunning) and dunning["payload"].map(lambda p: "links" in p).all()
    assert not dunning["payload"].map(lambda p: "update_payment_url" in p).any()  # not yet signed
    sent_at = dt.datetime.combine(day, dt.time(), dt.UTC) + dt.timedelta(days=2, hours=5)
    for rec in dunning.to_dict("records"):
        payload = with_links(rec["payload"], rec["customer_id"], signer, sent_at)
        url = payload["update_payment_url"]
        token = url.split("token=")[1]
        later = sent_at + dt.timedelta(hours=71)  # expiry counts from the send
        assert verify(token, SECRET, UPDATE_PAYMENT, now=later).customer_id == rec["customer_id"]
        for locale in ("en", "pt-BR"):
            text = render(rec["kind"], locale, payload)
            assert url in text.body
    for kind, payload in (
        ("card_expiring", {"expires_on": "2025-04-30", "update_payment_url": "https://x/y"}),
        ("trial_ending", {"trial_end": "2025-04-30", "plan": "pro"}),
        ("scheduled_cancellation", {"ends_on": "2025-04-30", "plan": "pro"}),
    ):
        assert "2025" in render(kind, "pt-BR", payload).body
        assert "April 30, 2025" in render(kind, "en", payload).body


def test_saves_count_only_customers_still_active_after_30_days(project, store) -> None:
    from retention.saves import check_saves, record_intent

    r = RetentionParams(holdout_share=0.0)
    subs = read_table(project.raw_dir, "subscriptions")
    gone = subs[subs["cancelled_at"].notna()].iloc[0]
    live = subs[subs["cancelled_at"].isna()].iloc[0]
    visit = (gone["cancelled_at"] - pd.Timedelta(days=10)).date()
    a = record_intent(store, int(gone["customer_id"]), "too_expensive", visit, r)
    b = record_intent(store, int(live["customer_id"]), "not_using", visit, r)
    assert a["offer"] is not None and b["offer"].startswith("pause_")
    again = record_intent(store, int(live["customer_id"]), "other", visit, r)
    assert again["offer"] is None and "already offered" in again["explanation"]  # frequency cap
    early = check_saves(store, visit + dt.timedelta(days=29), r.save_days)
    assert early.empty  # not settled before 30 days
    table = check_saves(store, visit + dt.timedelta(days=30), r.save_days).set_index("reason")
    assert table.loc["too_expensive", "saved"] == 0
    assert table.loc["not_using", "saved"] == 1


def test_holdout_is_deterministic_and_sized() -> None:
    from paycycle.holdout import in_holdout

    ids = np.arange(1, 20_001)
    a, b = in_holdout(ids, 0.1, "salt"), in_holdout(ids, 0.1, "salt")
    assert (a == b).all() and 0.09 < a.mean() < 0.11
    assert (a != in_holdout(ids, 0.1, "other")).any()


def test_guard_offers_applies_holdout_and_frequency_cap() -> None:
    from paycycle.holdout import in_holdout
    from retention.uplift import guard_offers

    r = RetentionParams(holdout_share=0.2, offer_cap_days=60)
    ids = np.arange(1, 201)
    decisions = pd.DataFrame({"customer_id": ids, "offer_type": "discount_10"})
    offered = pd.to_datetime(["2025-05-20", "2025-01-01"])
    history = pd.DataFrame({"customer_id": [5, 6], "offered_at": offered})
    out = guard_offers(decisions, history, "2025-06-01", r)
    hold = in_holdout(ids, 0.2, r.holdout_salt)
    assert out.loc[hold, "offer_type"].isna().all()
    capped = out.set_index("customer_id")
    if not hold[4]:
        assert capped.loc[5, "offer_type"] is None
    if not hold[5]:
        assert capped.loc[6, "offer_type"] == "discount_10"


def test_uplift_ci_covers_true_uplift_for_every_offer(small_sim: Path, tmp_path: Path) -> None:
    import json

    from retention.uplift import uplift_report

    events = {k: read_table(small_sim / "raw", k) for k in ("offers", "subscriptions")}
    table = uplift_report(events, RetentionParams(), tmp_path, small_sim / "truth")
    assert set(table.index) == set(catalog.OFFER_TYPES)
    assert (table["n_treated"] > 50).all()
    assert table["covered"].all(), table
    assert (table["true_uplift"] > 0).all()
    saved = json.loads((tmp_path / "uplift.json").read_text())
    assert len(saved["offers"]) == 5 and (tmp_path / "uplift.md").exists()

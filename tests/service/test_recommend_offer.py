"""`/recommend` and `/offer` on the real service with registered recommender and offer policy."""

from __future__ import annotations

import threading

import httpx
import pytest

from paycycle import catalog

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(300)]

BASE = {"subscription_duration": 20, "failed_payments": 0, "usage_pattern": 60, "plan_id": 2}
RISKY = {  # new, failing payments, barely using the product
    "subscription_duration": 2,
    "failed_payments": 6,
    "usage_pattern": 5,
    "unpaid_invoice": 1,
    "active_share": 0.1,
    "plan_id": 3,
}


def _versions(api) -> dict[str, str]:
    models = httpx.get(f"{api.url}/readyz").json()["models"]
    return {m["name"]: m["version"] for m in models if m["loaded"]}


def test_readyz_lists_all_three_champions(api) -> None:
    body = httpx.get(f"{api.url}/readyz").json()
    by_name = {m["name"]: m for m in body["models"]}
    assert set(by_name) == {"paycycle-churn", "paycycle-recommender", "paycycle-offers"}
    for m in by_name.values():
        assert m["loaded"] and m["alias"] == "champion" and m["version"], m


def test_recommend_excludes_owned_addons_and_the_current_plan(api) -> None:
    owned = ["analytics", "api_access", "extra_storage"]
    r = api.post("/recommend", {"customers": [{**BASE, "customer_id": "a", "addons": owned}],
                                "k": 9})  # fmt: skip
    assert r.status_code == 200, r.text
    (rec,) = r.json()
    items = [i["item"] for i in rec["items"]]
    assert rec["customer_id"] == "a"
    assert rec["model_version"] == _versions(api)["paycycle-recommender"]
    assert items and not {f"addon:{a}" for a in owned} & set(items)
    assert "plan:growth" not in items  # the current plan is never an item
    assert not any(i.startswith("plan:") for i in items)  # 60% of the plan: no move makes sense
    scores = [i["score"] for i in rec["items"]]
    assert scores == sorted(scores, reverse=True) and all(0 < s <= 1 for s in scores)


def test_usage_far_above_the_plan_ranks_an_upgrade_in_the_top_three(api) -> None:
    heavy = {**BASE, "usage_pattern": 300, "hist_usage_ratio": 2.8}
    light = {**BASE, "usage_pattern": 10, "hist_usage_ratio": 0.1}
    top = {**BASE, "plan_id": 4, "usage_pattern": 400}
    r = api.post("/recommend", {"customers": [heavy, light, top], "k": 3})
    assert r.status_code == 200, r.text
    heavy_items, light_items, top_items = ([i["item"] for i in o["items"]] for o in r.json())
    assert "plan:pro" in heavy_items, heavy_items  # growth → pro, one tier up
    assert "plan:starter" not in heavy_items
    assert "plan:pro" not in light_items
    assert not any(i.startswith("plan:") for i in top_items)  # nothing above enterprise


def test_recommend_in_a_crowd_gives_the_same_ranking(api) -> None:
    body = {"customers": [{**BASE, "usage_pattern": 250, "addons": ["sms_pack"]}]}
    alone = api.post("/recommend", body).json()
    results: list[object] = []

    def fire() -> None:
        results.append(api.post("/recommend", body).json())

    threads = [threading.Thread(target=fire) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [alone] * 12


@pytest.mark.parametrize("path", ["/recommend", "/offer"])
@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"plan_id": 99}, "plan_id"),
        ({"usage_pattern": -10}, "usage_pattern"),
        ({"hist_usage_ratio": -1}, "hist_usage_ratio"),
        ({"addons": ["gold"]}, "addons"),
        ({"plan_tier": 3}, "plan_tier"),
    ],
)
def test_unknown_plan_or_negative_usage_is_422_naming_the_field(
    api, path: str, change: dict, field: str
) -> None:
    r = api.post(path, {"customers": [BASE, {**BASE, **change}]})
    assert r.status_code == 422, r.text
    locs = [[str(part) for part in d["loc"]] for d in r.json()["detail"]]
    assert any(field in loc and "1" in loc for loc in locs), locs  # the second customer


def test_offer_returns_an_offer_or_none_with_reason_and_value(api) -> None:
    calm = {**BASE, "subscription_duration": 60, "usage_pattern": 90}
    r = api.post("/offer", {"customers": [{**calm, "customer_id": "calm"},
                                          {**RISKY, "customer_id": "risky"}]})  # fmt: skip
    assert r.status_code == 200, r.text
    calm_out, risky_out = r.json()
    versions = _versions(api)
    for out in (calm_out, risky_out):
        assert out["model_version"] == versions["paycycle-churn"]
        assert out["policy_version"] == versions["paycycle-offers"]
        assert (out["offer"] is None) == (out["expected_value"] <= 0), out
        assert out["reason"].startswith("no offer") == (out["offer"] is None), out
        assert 0 <= out["accept_probability"] <= 1
    assert risky_out["churn_probability"] > calm_out["churn_probability"]
    assert risky_out["offer"] in catalog.OFFER_TYPES and risky_out["expected_value"] > 0
    assert "EV +" in risky_out["reason"] and risky_out["offer"] in risky_out["reason"]


def test_offer_uses_the_churn_champion_of_the_same_request(api) -> None:
    """/offer's P(churn) is /churn's for the same features (tier, count, fit derived)."""
    profile = {**RISKY, "addons": ["sms_pack"]}
    offer = api.post("/offer", {"customers": [profile]}).json()[0]
    features = {k: v for k, v in profile.items() if k not in ("plan_id", "addons")}
    features |= {"plan_tier": 3, "addons_count": 1, "plan_fit": -2.995732273553991,
                 "monthly_charge_usd": 99.0}  # fmt: skip
    churn = api.post("/churn", {"customers": [features]}).json()[0]
    assert offer["churn_probability"] == pytest.approx(churn["churn_probability"], abs=1e-6)


def test_no_offer_when_expected_value_is_not_positive(api) -> None:
    """Paying 1 USD a month on the pro plan: even certain churn cannot repay the cheapest offer
    (cost ≥ 15% of 99 USD > 12 months × 1 USD kept), so EV ≤ 0 ⇒ no offer."""
    r = api.post("/offer", {"customers": [{**RISKY, "monthly_charge_usd": 1.0}]})
    assert r.status_code == 200, r.text
    (out,) = r.json()
    assert out["offer"] is None
    assert out["expected_value"] <= 0
    assert out["reason"].startswith("no offer") and "≤ 0" in out["reason"]


def test_openapi_documents_profiles(api) -> None:
    spec = httpx.get(f"{api.url}/docs.json", headers=api.auth).json()
    for path in ("/recommend", "/offer"):
        operation = spec["paths"][path]["post"]
        assert operation["requestBody"]["required"] is True
        assert {"200", "401", "422", "503"} <= set(operation["responses"])
    profile = spec["components"]["schemas"]["Profile"]
    assert "plan_id" in profile["required"]
    assert profile["properties"]["plan_id"]["enum"] == [p[0] for p in catalog.PLANS]
    assert profile["properties"]["addons"]["items"]["enum"] == catalog.ADDON_NAMES
    assert profile["properties"]["hist_usage_ratio"]["anyOf"][0]["minimum"] == 0

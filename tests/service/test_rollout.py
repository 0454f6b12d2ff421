"""Safe rollout against the real service: canary stickiness, automatic rollback, promotion.

The service runs on a copy of the session's serving store (registry and store), with short
stages and a fast poll, so a rollout goes from shadow to full traffic in seconds. Bad
challengers are real registered versions (`tests.rollout_models`); the good one is the
champion's own artifact registered again. The promotion test runs last: it moves the alias.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing

import httpx
import numpy as np
import pytest
import yaml

from inference.registry import CHAMPION, CHURN_MODEL, alias_version, client
from serving.process import free_port, serve, wait_ready
from tests.rollout_models import RAISE_AT, register_bad_challenger, service_env
from tests.service.conftest import Api

STAGES = [
    {"name": "shadow", "percent": 0, "bake_s": 1.5},
    {"name": "canary-50", "percent": 50, "bake_s": 1.5},
    {"name": "full", "percent": 100, "bake_s": 1.5},
]
LIMITS = {"poll_s": 0.2, "window_s": 60, "min_requests": 10, "min_scores": 200}


@pytest.fixture(scope="module")
def rapi(serving_store, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """The service on a private copy of the serving store, with second-long rollout stages."""
    from paycycle.store import upgrade

    src_uri, src = serving_store
    work = tmp_path_factory.mktemp("rollout")
    for name in ("mlruns.db", "store.db"):
        with (
            closing(sqlite3.connect(src / name)) as source,
            closing(sqlite3.connect(work / name)) as copy,
        ):
            source.backup(copy)
    (work / "data").symlink_to(src / "data", target_is_directory=True)
    raw = yaml.safe_load((src / "params.yaml").read_text())
    raw["rollout"] = {"stages": STAGES, **LIMITS}
    raw["drift"] |= {"log_requests": True, "requests_dir": str(work / "requests")}
    (work / "params.yaml").write_text(yaml.safe_dump(raw))
    uri, store = f"sqlite:///{work / 'mlruns.db'}", f"sqlite:///{work / 'store.db'}"
    upgrade(store)
    token = secrets.token_urlsafe(24)
    env = service_env(work, uri, store, token)
    port = free_port()
    with serve("serving.service:PayCycle", port, env, work / "service.log") as proc:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, proc, work / "service.log")
        os.environ.setdefault("PAYCYCLE_ACTOR", "rollout-test")
        yield Api(url=url, token=token, tracking_uri=uri, workdir=work)
    shutil.rmtree(work / "bentoml", ignore_errors=True)


def _settings(api: Api):
    from paycycle import config

    return config.load(
        root=api.workdir,
        mlflow_tracking_uri=api.tracking_uri,
        database_url=f"sqlite:///{api.workdir / 'store.db'}",
    )


def _customers(rng: np.random.Generator, ids: range, faulty_every: int = 0) -> list[dict]:
    rows = [
        {
            "customer_id": f"c{i}",
            "subscription_duration": float(rng.integers(1, 60)),
            "failed_payments": float(rng.integers(0, 4)),
            "usage_pattern": float(rng.uniform(10, 90)),
        }
        for i in ids
    ]
    if faulty_every:
        for row in rows[::faulty_every]:
            row["usage_pattern"] = RAISE_AT + 1
    return rows


def _rollout(api: Api) -> dict:
    return httpx.get(f"{api.url}/readyz", timeout=10).json()["rollout"] or {}


def _wait(api: Api, done, timeout: float = 120, traffic=None) -> dict:
    deadline = time.monotonic() + timeout
    while not done(status := _rollout(api)):
        assert time.monotonic() < deadline, status
        if traffic is not None:
            traffic()
        else:
            time.sleep(0.1)
    return status


def _good_challenger(api: Api) -> str:
    from training import registry, tracking

    settings = _settings(api)
    champion = alias_version(settings, CHURN_MODEL, CHAMPION)
    source = client(settings).get_model_version(CHURN_MODEL, champion).source
    version = tracking.register_version(settings, source, CHURN_MODEL, {"test": "good"})
    tracking.set_alias(settings, CHURN_MODEL, registry.CHALLENGER, version)
    return version


def _start_at_canary(api: Api) -> dict:
    """Start a rollout of the challenger and put it straight at the 50% canary stage."""
    from inference import rollout_state
    from paycycle.store import make_engine
    from training.rollout import start_rollout

    settings = _settings(api)
    view = start_rollout(settings)
    rollout_state.move_to(make_engine(settings.db_url), view.rollout_id, 1, {"stage": "test"})
    return _wait(api, lambda s: s.get("routing") and s.get("stage") == "canary-50")


def test_a_customer_keeps_one_model_during_a_canary(rapi: Api) -> None:
    from training.rollout import abort_rollout

    champion = alias_version(_settings(rapi), CHURN_MODEL, CHAMPION)
    challenger = _good_challenger(rapi)
    _start_at_canary(rapi)
    rng = np.random.default_rng(5)
    body = _customers(rng, range(60))
    seen: dict[str, set[str]] = {}
    for _ in range(3):
        r = rapi.post("/churn", {"customers": body})
        assert r.status_code == 200, r.text
        for row in r.json():
            seen.setdefault(row["customer_id"], set()).add(row["model_version"])
    assert all(len(v) == 1 for v in seen.values()), seen
    assert {v for (v,) in seen.values()} == {champion, challenger}
    abort_rollout(_settings(rapi), "test over")
    _wait(rapi, lambda s: s.get("state") == "aborted" and not s.get("routing"))
    assert {row["model_version"] for row in rapi.post("/churn", {"customers": body}).json()} == {
        champion
    }


@pytest.mark.parametrize(
    ("kind", "guard"), [("raising", "error rate"), ("constant", "score shift")]
)
def test_bad_challenger_is_rolled_back_without_client_errors(
    rapi: Api, kind: str, guard: str
) -> None:
    settings = _settings(rapi)
    champion = alias_version(settings, CHURN_MODEL, CHAMPION)
    bad = register_bad_challenger(settings, kind)
    _start_at_canary(rapi)
    rng = np.random.default_rng(7)
    statuses: list[int] = []

    def traffic() -> None:
        for _ in range(10):
            statuses.append(
                rapi.post(
                    "/churn", {"customers": _customers(rng, range(20), faulty_every=10)}
                ).status_code
            )

    ended = _wait(rapi, lambda s: s.get("state") == "rolled_back", traffic=traffic)
    assert set(statuses) == {200}
    assert guard in ended["reason"] and ended["routing"] is False
    assert alias_version(settings, CHURN_MODEL, CHAMPION) == champion
    answered = {
        row["model_version"]
        for row in rapi.post("/churn", {"customers": _customers(rng, range(40))}).json()
    }
    assert answered == {champion} and bad not in answered


def test_good_challenger_passes_every_stage_and_becomes_champion(rapi: Api) -> None:
    from training.registry import history
    from training.rollout import drive, start_rollout

    settings = _settings(rapi)
    previous = alias_version(settings, CHURN_MODEL, CHAMPION)
    challenger = _good_challenger(rapi)
    view = start_rollout(settings)
    ended: list = []
    driver = threading.Thread(target=lambda: ended.append(drive(settings, view.rollout_id, 90)))
    driver.start()
    rng = np.random.default_rng(11)
    statuses: list[int] = []
    while driver.is_alive():
        statuses.append(rapi.post("/churn", {"customers": _customers(rng, range(20))}).status_code)
    (final,) = ended
    assert final.state == "promoted", final
    assert [t["stage"] for t in final.timeline] == [s["name"] for s in STAGES]
    assert set(statuses) == {200}
    assert alias_version(settings, CHURN_MODEL, CHAMPION) == challenger
    decision = history(CHURN_MODEL, settings)[-1]
    assert (decision.action, decision.version, decision.previous) == (
        "promoted",
        challenger,
        previous,
    )
    assert "safe rollout" in decision.reason and decision.metrics["rollout.full.calls"] > 0
    # shadow: the challenger's scores are logged with the champion's prediction ids
    from monitoring.requests import read_requests

    logged = read_requests(rapi.workdir / "requests")
    shadow = logged.loc[logged["role"] == "shadow"]
    served = logged.loc[logged["role"] == "served"].set_index("prediction_id")
    assert len(shadow) > 0 and set(shadow["model_version"]) == {challenger}
    assert set(served.loc[shadow["prediction_id"], "model_version"]) == {previous}
    # the service reloads its champion: the new version answers everyone
    deadline = time.monotonic() + 120
    while {
        r["model_version"]
        for r in rapi.post("/churn", {"customers": _customers(rng, range(10))}).json()
    } != {challenger}:
        assert time.monotonic() < deadline
        time.sleep(0.2)

"""The real service on a free local port, serving small real champions from a temp registry.

Started once per session: the shared churn champion (`champion_store`, ~1 min) plus a small
recommender and offer policy fitted on the same simulation (`serving_store`, ~25 s), then TF.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from paycycle import config
from serving.process import free_port, serve, wait_ready
from tests.conftest import PROJECT_ROOT

# a few epochs on the 2k-customer simulation; its ~170 held-out adopters make recall@3 ÷ oracle
# noisy, so the promotion floor is lowered for the fixture only
FAST_RECOMMENDER = {"hidden_units": [32], "epochs": 10, "patience": 3, "min_oracle_ratio": 0.5}


@dataclass
class Api:
    url: str
    token: str
    tracking_uri: str
    workdir: Path
    link_secret: str = ""

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def post(
        self, path: str, body: object, headers: dict | None = None, **kwargs
    ) -> httpx.Response:
        headers = {**self.auth, **(headers or {})}
        return httpx.post(f"{self.url}{path}", json=body, headers=headers, timeout=30, **kwargs)

    def settings(self) -> config.Settings:
        return config.load(mlflow_tracking_uri=self.tracking_uri)


@pytest.fixture(scope="session")
def serving_store(
    champion_store: tuple[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Path]:
    """A copy of `champion_store`'s registry plus `paycycle-recommender@champion` and
    `paycycle-offers@champion`, trained, logged, registered and promoted by the real pipeline
    code on the churn champion's simulation. The copy keeps the shared store untouched.

    Returns (tracking URI, work folder).
    """
    from paycycle.loader import migrate_and_load
    from training.offers.pipeline import promote_offers, train_and_log_offers
    from training.recommender.pipeline import build_table, promote_recommender, train_and_log

    src_uri, src = champion_store
    work = tmp_path_factory.mktemp("serving")
    with (
        closing(sqlite3.connect(src_uri.removeprefix("sqlite:///"))) as source,
        closing(sqlite3.connect(work / "mlruns.db")) as copy,
    ):
        source.backup(copy)  # consistent even while the source is open
    (work / "data").symlink_to(src / "data", target_is_directory=True)
    raw = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    raw["recommend"] |= FAST_RECOMMENDER
    raw["drift"]["log_flush_rows"] = 5  # the request-log test sees its file within a request
    (work / "params.yaml").write_text(yaml.safe_dump(raw))
    uri = f"sqlite:///{work / 'mlruns.db'}"
    settings = config.load(root=work, mlflow_tracking_uri=uri)
    table = build_table(settings)
    train_and_log(settings, table)
    decision = promote_recommender(settings, table)
    assert decision.promoted, decision.reason
    train_and_log_offers(settings)
    decision = promote_offers(settings)
    assert decision.promoted, decision.reason
    store = config.load(root=work, mlflow_tracking_uri=uri, database_url=_store_url(work))
    migrate_and_load(store)  # /cancel-intent reads customers and records visits in the store
    return uri, work


def _store_url(work: Path) -> str:
    return f"sqlite:///{work / 'store.db'}"


@pytest.fixture(scope="session")
def api(serving_store: tuple[str, Path]) -> Iterator[Api]:
    """`serving.service:PayCycle` as a subprocess on 127.0.0.1, ready to answer."""
    uri, work = serving_store
    token = secrets.token_urlsafe(24)
    link_secret = secrets.token_urlsafe(32)
    port = free_port()
    env = {
        **os.environ,
        "PAYCYCLE_API_TOKEN": token,
        "PAYCYCLE_LINK_SECRET": link_secret,  # /payment-method answers signed links
        "MLFLOW_TRACKING_URI": uri,
        "BENTOML_HOME": str(work / "bentoml"),
        "PAYCYCLE_ROOT": str(work),  # its params.yaml; the request log goes under work/data
        "PAYCYCLE_DATABASE_URL": _store_url(work),
    }
    log = work / "service.log"
    with serve("serving.service:PayCycle", port, env, log) as proc:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, proc, log)
        yield Api(url=url, token=token, tracking_uri=uri, workdir=work, link_secret=link_secret)


@pytest.fixture()
def monitor_env(api: Api, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point the monitor flow at the running service and its registry; returns the project root
    (the fixture's work folder) to pass as the flow's `root`."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", api.tracking_uri)
    monkeypatch.setenv("PAYCYCLE_SERVICE_URL", api.url)
    monkeypatch.setenv("PAYCYCLE_API_TOKEN", api.token)
    return str(api.workdir)

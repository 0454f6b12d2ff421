"""The real service against a registry that becomes slow: `POST /admin/reload` while the load
takes longer than the 10 s request deadline, and while it passes its own deadline.

The service reads the registry through `standin.gated_proxy` in front of a real `mlflow server`
(a copy of the service tests' registry); closing the proxy's gate holds every registry call, so
the load is slow without touching our code. Before: each POST waited for its load, got a 504 at
10 s while the load ran on, and every retry started another parallel load. After: each POST
answers 202 at once and joins the one load; the old version serves until the swap; a load past
`serving.reload_timeout_s` is marked failed and its late result discarded.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass

import httpx
import pytest
import yaml

from inference.registry import CHAMPION, CHURN_MODEL, alias_version, client
from paycycle import config
from serving.process import free_port, serve, wait_ready
from serving.service import TIMEOUT_S
from tests import mlflow_server
from tests.faults.standin import GatedProxy, gated_proxy

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(900)]

RELOAD_TIMEOUT_S = 20  # the load's own deadline in this test (> TIMEOUT_S: it may outlive one)
VALID = {"subscription_duration": 10, "failed_payments": 0, "usage_pattern": 80}


@dataclass
class Slow:
    url: str
    token: str
    proxy: GatedProxy
    registry: config.Settings  # straight to the mlflow server, not through the gate

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def reload(self) -> httpx.Response:
        return httpx.post(f"{self.url}/admin/reload", json={}, headers=self.auth, timeout=5)

    def status(self) -> dict:
        return httpx.get(f"{self.url}/admin/reload", headers=self.auth, timeout=5).json()

    def served(self) -> str:
        r = httpx.post(
            f"{self.url}/churn", json={"customers": [VALID]}, headers=self.auth, timeout=5
        )
        assert r.status_code == 200, r.text
        return r.json()[0]["model_version"]

    def wait(self, done, timeout: float = 180) -> dict:
        deadline = time.monotonic() + timeout
        while not done(status := self.status()):
            assert time.monotonic() < deadline, status
            time.sleep(0.2)
        return status

    def new_champion(self) -> str:
        """Register the champion's artifact as a new version and point `champion` at it."""
        from training import tracking

        old = alias_version(self.registry, CHURN_MODEL, CHAMPION)
        source = client(self.registry).get_model_version(CHURN_MODEL, old).source
        new = tracking.register_version(self.registry, source, CHURN_MODEL, {"test": "slow"})
        tracking.set_alias(self.registry, CHURN_MODEL, CHAMPION, new)
        return new

    def churn_lookups(self, since: int) -> int:
        """Registry reads of `paycycle-churn@champion` since request number `since`."""
        return sum(
            "registered-models/alias" in path and f"name={CHURN_MODEL}" in path
            for _, path in self.proxy.requests[since:]
        )


@pytest.fixture(scope="module")
def slow(serving_store, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slow]:
    src_uri, src = serving_store
    work = tmp_path_factory.mktemp("slow-registry")
    with (
        closing(sqlite3.connect(src_uri.removeprefix("sqlite:///"))) as source,
        closing(sqlite3.connect(work / "mlruns.db")) as copy,
    ):
        source.backup(copy)
    (work / "data").symlink_to(src / "data", target_is_directory=True)
    raw = yaml.safe_load((src / "params.yaml").read_text())
    raw["serving"]["reload_timeout_s"] = RELOAD_TIMEOUT_S
    raw["drift"]["log_requests"] = False
    (work / "params.yaml").write_text(yaml.safe_dump(raw))
    server = mlflow_server.start(
        f"sqlite:///{work / 'mlruns.db'}", work / "artifacts", work / "mlflow.log"
    )
    try:
        server.wait_ready()
        with gated_proxy(server.url) as proxy:
            token = secrets.token_urlsafe(24)
            port = free_port()
            env = {
                **os.environ,
                "PAYCYCLE_API_TOKEN": token,
                "MLFLOW_TRACKING_URI": proxy.url,
                # each held registry call must outlast the hold: the user's value wins over ours
                "MLFLOW_HTTP_REQUEST_TIMEOUT": "120",
                "BENTOML_HOME": str(work / "bentoml"),
                "PAYCYCLE_ROOT": str(work),
            }
            log = work / "service.log"
            with serve("serving.service:PayCycle", port, env, log) as proc:
                url = f"http://127.0.0.1:{port}"
                wait_ready(url, proc, log, timeout=300)
                registry = config.load(root=work, mlflow_tracking_uri=server.url)
                yield Slow(url, token, proxy, registry)
    finally:
        server.stop()
        shutil.rmtree(work / "bentoml", ignore_errors=True)


def test_reload_slower_than_the_request_deadline_is_single_flight(slow: Slow) -> None:
    old = slow.served()
    new = slow.new_champion()
    slow.proxy.close_gate()  # the registry stops answering for now
    mark = len(slow.proxy.requests)
    try:
        first = slow.reload()
        assert first.status_code == 202, first.text
        started = first.json()["started_at"]
        assert first.json()["state"] == "loading"
        while slow.proxy.held == 0:  # the load is waiting on the registry
            time.sleep(0.05)
        past_deadline = time.monotonic() + TIMEOUT_S + 1
        posts = 0
        while time.monotonic() < past_deadline:  # retries for longer than a request may take
            again = slow.reload()
            assert again.status_code == 202, again.text
            assert again.json()["state"] == "loading" and again.json()["started_at"] == started
            assert slow.served() == old  # the old version serves throughout
            posts += 1
            time.sleep(1)
        assert posts >= 2  # several retries, each answered 202 while the load ran on
        assert slow.proxy.peak_held == 1  # one load, one registry call at a time
    finally:
        slow.proxy.open_gate()
    done = slow.wait(lambda s: s["state"] != "loading")
    assert done["state"] == "done", done
    assert done["started_at"] == started and done["versions"][CHURN_MODEL] == new
    assert slow.served() == new
    assert slow.churn_lookups(mark) == 1  # exactly one load read the churn champion


def test_reload_past_its_own_deadline_fails_and_the_old_version_keeps_serving(
    slow: Slow,
) -> None:
    before = slow.served()
    newer = slow.new_champion()
    slow.proxy.close_gate()
    try:
        assert slow.reload().status_code == 202
        failed = slow.wait(lambda s: s["state"] != "loading", timeout=RELOAD_TIMEOUT_S + 60)
        assert failed["state"] == "failed" and failed["busy"], failed
        assert f"reload_timeout_s={RELOAD_TIMEOUT_S}" in failed["error"]
        assert slow.served() == before
        refused = slow.reload()  # the late load still holds the thread: no second one
        assert refused.status_code == 409 and refused.json()["busy"]
        assert slow.proxy.peak_held == 1
    finally:
        slow.proxy.open_gate()
    slow.wait(lambda s: not s["busy"])
    assert slow.served() == before  # the late result was discarded
    assert slow.reload().status_code == 202
    done = slow.wait(lambda s: s["state"] != "loading")
    assert done["state"] == "done" and done["versions"][CHURN_MODEL] == newer, done
    assert slow.served() == newer

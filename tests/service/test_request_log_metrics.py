"""The request log's counters in the real service's `GET /metrics`, and a service whose request
log cannot be written: it keeps answering, counts the failed flushes and leaves no .tmp behind."""

from __future__ import annotations

import os
import re
import secrets
import time
from pathlib import Path

import httpx
import pytest
import yaml

from serving.process import free_port, serve, wait_ready

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(300)]

FAILURES = "paycycle_request_log_flush_failures_total"
DROPPED = "paycycle_request_log_dropped_rows_total"


def _counter(text: str, name: str) -> float | None:
    found = re.search(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+]+)$", text, re.MULTILINE)
    return float(found[1]) if found else None


def _customers(prefix: str, n: int) -> list[dict]:
    return [
        {
            "customer_id": f"{prefix}-{i}",
            "subscription_duration": i,
            "failed_payments": 0,
            "usage_pattern": 50,
        }
        for i in range(n)
    ]


def test_request_log_counters_are_in_metrics(api) -> None:
    # /churn is a hot route with its own series (serving.hot); /recommend goes through BentoML's
    profile = {**_customers("m", 1)[0], "plan_id": 2}
    assert api.post("/recommend", {"customers": [profile]}).status_code == 200
    r = httpx.get(f"{api.url}/metrics", headers=api.auth)
    assert r.status_code == 200
    assert _counter(r.text, FAILURES) == 0.0
    assert _counter(r.text, DROPPED) == 0.0
    assert "bentoml_service_request_duration_seconds" in r.text  # BentoML's own still there


def test_unwritable_request_log_is_counted_in_metrics_and_service_keeps_answering(
    serving_store: tuple[str, Path], tmp_path: Path
) -> None:
    """The fault: `drift.requests_dir` sits under a regular file (fails for root too)."""
    uri, work = serving_store
    root = tmp_path / "root"
    root.mkdir()
    (root / "data").symlink_to(work / "data", target_is_directory=True)
    (root / "blocked").write_text("a file where the request-log folder's parent must be")
    raw = yaml.safe_load((work / "params.yaml").read_text())
    raw["drift"] |= {"requests_dir": "blocked/requests", "log_flush_rows": 5}
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    token = secrets.token_urlsafe(24)
    auth = {"Authorization": f"Bearer {token}"}
    port = free_port()
    env = {
        **os.environ,
        "PAYCYCLE_API_TOKEN": token,
        "MLFLOW_TRACKING_URI": uri,
        "BENTOML_HOME": str(root / "bentoml"),
        "PAYCYCLE_ROOT": str(root),
        "PAYCYCLE_DATABASE_URL": f"sqlite:///{work / 'store.db'}",
    }
    log = root / "service.log"
    with serve("serving.service:PayCycle", port, env, log) as proc:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, proc, log)
        r = httpx.post(
            f"{url}/churn", json={"customers": _customers("f", 6)}, headers=auth, timeout=30
        )
        assert r.status_code == 200 and len(r.json()) == 6  # the answer does not wait on the log
        deadline = time.monotonic() + 30
        while True:  # the flush runs on the logger's background thread
            text = httpx.get(f"{url}/metrics", headers=auth).text
            failures = _counter(text, FAILURES) or 0.0
            if failures >= 1 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert failures == 1.0
        assert _counter(text, DROPPED) == 0.0  # 6 rows kept, far below the bound
        again = httpx.post(
            f"{url}/churn", json={"customers": _customers("g", 2)}, headers=auth, timeout=30
        )
        assert again.status_code == 200
    assert log.read_text().count("request log: flush failed (Not a directory") >= 1
    assert not list(root.glob("**/*.tmp"))

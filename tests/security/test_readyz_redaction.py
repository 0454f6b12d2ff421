"""`GET /readyz` is open to anyone: it must not show why a model failed to load.

The attack: read `/readyz` on a service whose tracking URI carries credentials and whose models
cannot load. The raw load error names the URI (password included); the answer must only say
that the model is not loaded, while the server log keeps the detail for the operator.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import httpx
import pytest

from serving.guard import READYZ_ERROR
from serving.process import free_port, serve
from tests.conftest import PROJECT_ROOT

PASSWORD = "hunter2-do-not-leak"
LEAKY_URI = f"bogus://mlflow-user:{PASSWORD}@127.0.0.1:1/mlflow"


def _readyz(url: str, proc, log: Path) -> httpx.Response:  # noqa: ANN001
    """The first answer of `/readyz`, whatever its status."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"service exited: {log.read_text()[-2000:]}")
        try:
            return httpx.get(f"{url}/readyz", timeout=5)
        except httpx.HTTPError:
            time.sleep(0.5)
    raise RuntimeError(f"/readyz never answered: {log.read_text()[-2000:]}")


@pytest.mark.slow
def test_readyz_hides_load_errors_and_the_log_keeps_them(tmp_path: Path) -> None:
    shutil.copy(PROJECT_ROOT / "params.yaml", tmp_path / "params.yaml")
    env = {
        **os.environ,
        "PAYCYCLE_API_TOKEN": "readyz-test-token-0123456789",
        "MLFLOW_TRACKING_URI": LEAKY_URI,
        "BENTOML_HOME": str(tmp_path / "bentoml"),
        "PAYCYCLE_ROOT": str(tmp_path),
    }
    log = tmp_path / "service.log"
    port = free_port()
    with serve("serving.service:PayCycle", port, env, log) as proc:
        r = _readyz(f"http://127.0.0.1:{port}", proc, log)
    assert r.status_code == 503, r.text
    body = r.json()
    assert body["ready"] is False and body["models"]
    assert all(m["error"] == READYZ_ERROR and not m["loaded"] for m in body["models"]), body
    assert PASSWORD not in r.text and "bogus" not in r.text
    logged = log.read_text()
    # the operator still finds out why in the server log (which URI failed), with the
    # credentials masked there too (RegistryUnavailable redacts them)
    assert "bogus://" in logged and "127.0.0.1:1" in logged, logged[-2000:]

"""The registered churn model stands on its own, the way a data scientist or a server meets it.

1. A fresh virtualenv built with uv from the model's *own* logged requirements (nothing of this
   checkout installed), started in an empty directory outside the checkout, loads
   `models:/paycycle-churn@champion` with `mlflow.pyfunc.load_model` and scores the seed's own
   three-column frame: three probabilities, rising with risk, equal to what `/churn` answers.
2. `mlflow models serve` answers `/invocations` with the seed's rows.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from features.columns import customers_to_columns
from inference import registry as models
from inference.compiled import compile_scorer
from inference.smoke import SEED_CUSTOMERS
from paycycle import config
from serving.process import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
SEED_COLUMNS = ["subscription_duration", "failed_payments", "usage_pattern"]
SEED_SNIPPET = """
import json, sys
import mlflow, pandas as pd
test_data = pd.DataFrame({'subscription_duration': [10, 15, 3], 'failed_payments': [0, 1, 3],
                          'usage_pattern': [80, 50, 20]})
model = mlflow.pyfunc.load_model("models:/paycycle-churn@champion")
import inference
print(json.dumps({"probs": [float(p) for p in model.predict(test_data)],
                  "code": inference.__file__}))
"""


def _uv() -> list[str]:
    found = shutil.which("uv")
    return [found] if found else ["python3", "-m", "uv"]


def _user_env(tracking_uri: str) -> dict[str, str]:
    """A plain shell's environment: no venv, no PYTHONPATH into the checkout."""
    drop = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("PREFECT_")}
    return env | {"MLFLOW_TRACKING_URI": tracking_uri, "TF_CPP_MIN_LOG_LEVEL": "3"}


@pytest.fixture(scope="module")
def champion(champion_store) -> tuple[str, np.ndarray]:
    """(tracking URI, what `/churn` answers for the seed customers: the compiled path)."""
    uri = champion_store[0]
    scorer, _ = models.load_scorer(
        models.CHURN_MODEL, settings=config.load(mlflow_tracking_uri=uri)
    )
    return uri, compile_scorer(scorer)(customers_to_columns(SEED_CUSTOMERS))


def test_pyfunc_loads_in_a_fresh_venv_from_its_own_requirements(champion, tmp_path) -> None:
    import mlflow

    uri, served = champion
    mlflow.set_tracking_uri(uri)
    requirements = mlflow.pyfunc.get_model_dependencies("models:/paycycle-churn@champion")
    venv = tmp_path / "venv"
    env = _user_env(uri)
    subprocess.run([*_uv(), "venv", "-q", "--python", "3.11", str(venv)], check=True, env=env)
    subprocess.run(
        [*_uv(), "pip", "install", "-q", "--python", str(venv / "bin" / "python"), "-r",
         requirements],
        check=True, env=env, timeout=400,
    )  # fmt: skip
    outside = tmp_path / "notebook"
    outside.mkdir()
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", SEED_SNIPPET],
        cwd=outside, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    assert not answer["code"].startswith(str(ROOT)), "the model used the checkout's code"
    probs = np.asarray(answer["probs"])
    assert probs.shape == (3,) and (np.diff(probs) > 0).all(), probs
    np.testing.assert_allclose(probs, served, atol=1e-6)


def test_mlflow_models_serve_answers_invocations(champion, tmp_path) -> None:
    uri, served = champion
    port = free_port()
    env = _user_env(uri) | {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    log = tmp_path / "serve.log"
    cmd = [str(Path(sys.executable).parent / "mlflow"), "models", "serve", "-m",
           "models:/paycycle-churn@champion", "--env-manager", "local", "-h", "127.0.0.1",
           "-p", str(port)]  # fmt: skip
    with log.open("w") as fh:
        proc = subprocess.Popen(
            cmd, cwd=tmp_path, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                if httpx.get(f"{url}/ping", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        rows = [[c[k] for k in SEED_COLUMNS] for c in SEED_CUSTOMERS]
        body = {"dataframe_split": {"columns": SEED_COLUMNS, "data": rows}}
        r = httpx.post(f"{url}/invocations", json=body, timeout=60)
        assert r.status_code == 200, r.text
        np.testing.assert_allclose(r.json()["predictions"], served, atol=1e-6)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)

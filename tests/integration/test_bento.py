"""The bento stands on its own: `paycycle build`, then `bentoml serve paycycle:latest` from an
empty directory outside the checkout, in a fresh virtualenv built from the bento's own
requirements (nothing of this checkout installed), answers `/churn` for the seed customers
exactly as the compiled path does; SIGTERM stops it and leaves no process behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from features.columns import customers_to_columns
from inference import registry as models
from inference.compiled import compile_scorer
from inference.smoke import SEED_CUSTOMERS
from paycycle import config
from serving.process import free_port, wait_ready

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "bento-test-token-0123456789"  # serving.credentials: >= 16 characters


def _uv() -> list[str]:
    from cli.commands.build import uv_command

    return uv_command()


def test_built_bento_serves_churn_from_an_empty_directory(champion_store, tmp_path) -> None:
    uri = champion_store[0]
    home = tmp_path / "bentoml"
    plain = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env = plain | {"BENTOML_HOME": str(home), "TF_CPP_MIN_LOG_LEVEL": "3"}

    built = subprocess.run(
        [sys.executable, "-m", "cli", "build"], cwd=tmp_path, env=env, capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    assert built.stdout.startswith("built paycycle:"), built.stdout
    bento = next((home / "bentos" / "paycycle").glob("*/bento.yaml")).parent
    shipped = {p.relative_to(bento / "src").parts[0] for p in (bento / "src").rglob("*.py")}
    assert {"serving", "inference"} <= shipped and not shipped & {"training", "cli", "flows"}

    venv = tmp_path / "venv"
    subprocess.run([*_uv(), "venv", "-q", "--python", "3.11", str(venv)], check=True, env=env)
    subprocess.run(
        [*_uv(), "pip", "install", "-q", "--python", str(venv / "bin" / "python"), "-r",
         str(bento / "env" / "python" / "requirements.txt")],
        check=True, env=env, timeout=400,
    )  # fmt: skip

    empty = tmp_path / "empty"
    empty.mkdir()
    port = free_port()
    log = tmp_path / "bento.log"
    serve_env = env | {"MLFLOW_TRACKING_URI": uri, "PAYCYCLE_API_TOKEN": TOKEN}
    with log.open("w") as fh:
        proc = subprocess.Popen(
            [str(venv / "bin" / "bentoml"), "serve", "paycycle:latest", "--host", "127.0.0.1",
             "--port", str(port)],
            cwd=empty, env=serve_env, stdout=fh, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc, log)
        r = httpx.post(
            f"{url}/churn",
            json={"customers": SEED_CUSTOMERS},
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        answered = np.array([row["churn_probability"] for row in r.json()])
        settings = config.load(mlflow_tracking_uri=uri)
        scorer, _ = models.load_scorer(models.CHURN_MODEL, settings=settings)
        expected = compile_scorer(scorer)(customers_to_columns(SEED_CUSTOMERS))
        np.testing.assert_allclose(answered, expected, atol=1e-6)
        assert (np.diff(answered) > 0).all()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    leftovers = subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True, text=True)
    assert leftovers.stdout.strip() == "", f"processes left behind: {leftovers.stdout}"

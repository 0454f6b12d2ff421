"""docker/mlflow-users.py against a real `mlflow server --app-name basic-auth` on 127.0.0.1:
the admin comes from the environment (docker/mlflow-auth.ini holds no password), the script makes
serving's reader, and the reader can load what the pipeline registered but cannot write it.

Attacks, as the reader (a leaked serving credential): log into the champion's run, move or delete
the `champion` alias, delete the model or the experiment, make itself admin, create users; and
anonymous or wrong-password requests. Each must be refused (401/403) and change nothing.
"""

from __future__ import annotations

import configparser
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from inference.registry import MODELS, RECOMMENDER_MODEL
from tests import mlflow_server
from tests.conftest import PROJECT_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SCRIPT = PROJECT_ROOT / "docker" / "mlflow-users.py"
API = "/api/2.0/mlflow"
MODEL = "paycycle-churn-test"  # the pipeline's own experiment/model stand-in


@dataclass
class AuthServer:
    url: str
    admin: tuple[str, str]
    reader: tuple[str, str]
    run_id: str
    experiment_id: str
    first: subprocess.CompletedProcess[str] | None = None

    def call(self, method: str, path: str, auth: tuple[str, str] | None, **kw) -> httpx.Response:
        return httpx.request(method, f"{self.url}{API}{path}", auth=auth, timeout=30, **kw)

    def users_script(self, **env: str) -> subprocess.CompletedProcess[str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        full = base | {
            "MLFLOW_TRACKING_URI": self.url,
            "MLFLOW_TRACKING_USERNAME": self.admin[0],
            "MLFLOW_TRACKING_PASSWORD": self.admin[1],
            "MLFLOW_READER_USER": self.reader[0],
            "MLFLOW_READER_PASSWORD": self.reader[1],
        }
        full = {k: v for k, v in (full | env).items() if v}
        return subprocess.run(
            [sys.executable, str(SCRIPT)], env=full, capture_output=True, text=True, timeout=120
        )


def _auth_config(tmp: Path) -> Path:
    """docker/mlflow-auth.ini with its user store moved into `tmp` (the only difference)."""
    config = configparser.ConfigParser()
    config.read(PROJECT_ROOT / "docker" / "mlflow-auth.ini")
    assert "admin_password" not in config["mlflow"], "no password may live in the ini"
    config["mlflow"]["database_uri"] = f"sqlite:///{tmp / 'basic_auth.db'}"
    path = tmp / "auth.ini"
    with path.open("w") as fh:
        config.write(fh)
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    tmp = tmp_path_factory.mktemp("mlflow-auth")
    admin = ("admin", secrets.token_hex(16))
    env = {
        "MLFLOW_AUTH_CONFIG_PATH": str(_auth_config(tmp)),
        "MLFLOW_AUTH_ADMIN_USERNAME": admin[0],
        "MLFLOW_AUTH_ADMIN_PASSWORD": admin[1],
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),
    }
    proc = mlflow_server.start(
        f"sqlite:///{tmp / 'mlflow.db'}", tmp / "artifacts", tmp / "server.log", "basic-auth", env
    )
    try:
        try:
            url = proc.wait_ready()
        except RuntimeError as exc:
            if "Flask-WTF" in str(exc) or "No module named" in str(exc):
                pytest.skip(f"the MLflow basic-auth app cannot start here: {exc}")
            raise
        ok = lambda r: r.raise_for_status().json()  # noqa: E731
        exp = ok(httpx.post(f"{url}{API}/experiments/create", auth=admin, json={"name": MODEL}))
        run = ok(
            httpx.post(
                f"{url}{API}/runs/create", auth=admin, json={"experiment_id": exp["experiment_id"]}
            )
        )["run"]["info"]["run_id"]
        ok(httpx.post(f"{url}{API}/registered-models/create", auth=admin, json={"name": MODEL}))
        live = AuthServer(url, admin, ("serving", secrets.token_hex(16)), run, exp["experiment_id"])
        live.first = live.users_script()  # what the mlflow-users service does once mlflow is up
        yield live
    finally:
        proc.stop()


def test_script_creates_the_reader_and_is_repeatable(server: AuthServer) -> None:
    first = server.first
    assert first.returncode == 0, first.stderr
    assert "read-only user 'serving' created" in first.stdout
    again = server.users_script()
    assert again.returncode == 0 and "updated" in again.stdout, again.stderr
    user = server.call("GET", "/users/get", server.admin, params={"username": "serving"})
    assert user.status_code == 200 and user.json()["user"]["is_admin"] is False


def test_reader_reads_what_serving_needs(server: AuthServer) -> None:
    r = server.reader
    assert (
        server.call("GET", "/registered-models/get", r, params={"name": MODEL}).status_code == 200
    )
    got = server.call("GET", "/experiments/get-by-name", r, params={"experiment_name": MODEL})
    assert got.status_code == 200 and got.json()["experiment"]["experiment_id"]
    assert server.call("GET", "/runs/get", r, params={"run_id": server.run_id}).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/runs/log-metric", {"key": "auc", "value": 0.99, "timestamp": 1, "step": 0}),
        ("POST", "/runs/set-tag", {"key": "pwned", "value": "1"}),
        ("POST", "/runs/delete", {}),
        ("POST", "/registered-models/alias", {"name": MODEL, "alias": "champion", "version": "1"}),
        ("DELETE", "/registered-models/alias", {"name": MODEL, "alias": "champion"}),
        ("PATCH", "/registered-models/update", {"name": MODEL, "description": "pwned"}),
        ("DELETE", "/registered-models/delete", {"name": MODEL}),
        ("POST", "/model-versions/create", {"name": MODEL, "source": "s3://evil/model"}),
        ("POST", "/experiments/delete", {}),
        ("PATCH", "/users/update-admin", {"username": "serving", "is_admin": True}),
        ("POST", "/users/create", {"username": "evil", "password": "x" * 16}),
        ("PATCH", "/users/update-password", {"username": "admin", "password": "y" * 16}),
    ],
)
def test_reader_cannot_write(server: AuthServer, method: str, path: str, body: dict) -> None:
    body = dict(body)
    if path.startswith("/runs/"):
        body["run_id"] = server.run_id
    if path == "/experiments/delete":
        body["experiment_id"] = server.experiment_id
    done = server.call(method, path, server.reader, json=body)
    assert done.status_code == 403, (path, done.status_code, done.text[:300])
    # nothing changed: the admin still logs in, the model and run are intact
    assert server.call("GET", "/registered-models/get", server.admin, params={"name": MODEL}).json()
    run = server.call("GET", "/runs/get", server.admin, params={"run_id": server.run_id}).json()
    assert run["run"]["info"]["lifecycle_stage"] == "active"
    assert not run["run"]["data"].get("metrics")
    assert "pwned" not in {t["key"] for t in run["run"]["data"].get("tags", [])}
    model = server.call("GET", "/registered-models/get", server.admin, params={"name": MODEL})
    assert "pwned" not in model.text


def test_reader_cannot_squat_a_model_name_before_the_first_training(server: AuthServer) -> None:
    """Attack: create `paycycle-recommender` (not trained yet) as the reader, own it, and point its
    `champion` at a model of one's choosing. The script registered every PayCycle name first."""
    squat = server.call("POST", "/registered-models/create", server.reader,
                        json={"name": RECOMMENDER_MODEL})  # fmt: skip
    assert squat.status_code == 400 and "RESOURCE_ALREADY_EXISTS" in squat.text
    alias = {"name": RECOMMENDER_MODEL, "alias": "champion", "version": "1"}
    assert (
        server.call("POST", "/registered-models/alias", server.reader, json=alias).status_code
        == 403
    )
    for name in MODELS:
        got = server.call("GET", "/registered-models/get", server.reader, params={"name": name})
        assert got.status_code == 200, name


@pytest.mark.parametrize("auth", [None, ("serving", "wrong-password"), ("admin", "password1234")])
def test_anonymous_or_wrong_password_is_401(server: AuthServer, auth) -> None:
    done = server.call("GET", "/registered-models/get", auth, params={"name": MODEL})
    assert done.status_code == 401


def test_script_errors_are_one_line(server: AuthServer) -> None:
    missing = server.users_script(MLFLOW_READER_PASSWORD="")
    assert missing.returncode == 2
    assert missing.stderr.strip() == "error: MLFLOW_READER_PASSWORD: not set"
    refused = server.users_script(MLFLOW_TRACKING_PASSWORD="not-the-admin-password")
    lines = [x for x in refused.stderr.splitlines() if x.strip()]
    assert refused.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: "), lines
    assert "Traceback" not in refused.stderr

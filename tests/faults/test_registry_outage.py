"""Registry outages are not "no alias": a down, erroring or silent MLflow server raises
`RegistryUnavailable` (exit 4 from the CLI), `promote` refuses without moving an alias, and
every MLflow HTTP call is bounded by our timeout/retry defaults. A healthy registry that has no
such alias still answers "none"."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from inference import registry
from paycycle import config
from paycycle.errors import EXIT_UNAVAILABLE, RegistryUnavailable
from tests.faults.standin import closed_port_url, failing_server, silent_server

pytestmark = pytest.mark.timeout(120)


@pytest.fixture()
def mlflow_http_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """No MLflow HTTP setting in the environment: `configure` applies ours."""
    for key in registry.HTTP_DEFAULTS:
        monkeypatch.delenv(key, raising=False)


def _settings(tmp_path: Path, uri: str) -> config.Settings:
    return config.load(root=tmp_path, mlflow_tracking_uri=uri)


def test_configure_sets_bounded_http_defaults(tmp_path: Path, mlflow_http_defaults) -> None:
    registry.configure(_settings(tmp_path, closed_port_url()))
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "10"
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "2"
    assert os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] == "1"


def test_configure_keeps_the_users_http_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", raising=False)
    registry.configure(_settings(tmp_path, closed_port_url()))
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "3"
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "0"
    assert os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] == "1"


@pytest.mark.parametrize("status", [503, 500])
def test_erroring_registry_is_unavailable_not_absent(
    tmp_path: Path, mlflow_http_defaults, status: int
) -> None:
    with failing_server(status) as server, pytest.raises(RegistryUnavailable) as caught:
        registry.alias_version(
            _settings(tmp_path, server.url), registry.CHURN_MODEL, registry.CHAMPION
        )
    message = str(caught.value)
    assert f"MLflow registry at {server.url} cannot be read" in message
    assert "\n" not in message
    # one call plus MLFLOW_HTTP_REQUEST_MAX_RETRIES=2 retries, then it gives up
    assert len(server.requests) == 3
    assert all("registered-models/alias?" in path for _, path in server.requests)


def test_unreachable_registry_is_unavailable_and_hides_the_password(
    tmp_path: Path, mlflow_http_defaults
) -> None:
    uri = closed_port_url().replace("http://", "http://paycycle:hunter2-secret@")
    with pytest.raises(RegistryUnavailable) as caught:
        registry.alias_version(_settings(tmp_path, uri), registry.CHURN_MODEL, registry.CHAMPION)
    message = str(caught.value)
    assert "cannot be read" in message and "paycycle:***@127.0.0.1" in message
    assert "hunter2" not in message
    assert caught.value.exit_code == EXIT_UNAVAILABLE


def test_silent_registry_times_out_at_the_configured_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that accepts and never answers: the call ends at MLFLOW_HTTP_REQUEST_TIMEOUT."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with (
        silent_server() as server,
        pytest.raises(RegistryUnavailable, match="timeout|timed out"),
    ):
        registry.alias_version(
            _settings(tmp_path, server.url), registry.CHURN_MODEL, registry.CHAMPION
        )


def test_missing_alias_on_a_healthy_registry_is_none(tmp_path: Path) -> None:
    settings = _settings(tmp_path, f"sqlite:///{tmp_path / 'mlruns.db'}")
    # the model is not registered at all
    assert registry.alias_version(settings, registry.CHURN_MODEL, registry.CHAMPION) is None
    # registered, but no version carries the alias
    registry.client(settings).create_registered_model(registry.CHURN_MODEL)
    assert registry.alias_version(settings, registry.CHURN_MODEL, registry.CHAMPION) is None


def test_promote_refuses_when_the_registry_cannot_be_read(
    tmp_path: Path, mlflow_http_defaults
) -> None:
    from training.registry import Policy, promote

    def evaluate(scorer):  # pragma: no cover - must never run
        raise AssertionError("promote evaluated a model while the registry was down")

    with failing_server(503) as server, pytest.raises(RegistryUnavailable) as caught:
        promote(
            registry.CHURN_MODEL,
            _settings(tmp_path, server.url),
            evaluate=evaluate,
            policy=Policy(metric="auc", margin=0.0),
            version="7",  # an explicit candidate: the champion read is what fails
        )
    assert str(caught.value).startswith(f"promote {registry.CHURN_MODEL}: refused, ")
    assert server.requests and {method for method, _ in server.requests} == {"GET"}  # no writes


@pytest.mark.slow
def test_service_start_against_an_unreachable_registry_reports_it(
    tmp_path: Path, mlflow_http_defaults
) -> None:
    """What the service does at start-up (`load_models`): every model fails with the registry
    error, within MLflow's bounded retries, and the service reports it instead of hanging."""
    from serving.models import load_models

    settings = _settings(tmp_path, closed_port_url())
    with ThreadPoolExecutor(max_workers=1) as executor:
        models = load_models(settings, executor)
    assert not models.ready
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "10"
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "2"
    assert set(models.errors) == set(registry.MODELS)
    for error in models.errors.values():
        assert error.startswith("RegistryUnavailable: MLflow registry at http://127.0.0.1:")


@pytest.mark.slow
def test_cli_promote_during_an_outage_is_one_line_exit_4(project, mlflow_http_defaults) -> None:
    from features.table import snapshot_dates, write_feature_table
    from tests.code.test_cli_errors import assert_one_line_error, paycycle

    d, fp = project.params.data, project.params.features
    dates = snapshot_dates(d.start_date, d.months, fp.snapshots, fp.horizon_days)
    write_feature_table(project.raw_dir, project.path(fp.path), dates)
    with failing_server(503) as server:
        done = paycycle(
            project.root, "promote", "churn", timeout=240, MLFLOW_TRACKING_URI=server.url
        )
    assert_one_line_error(
        done, EXIT_UNAVAILABLE, "promote paycycle-churn: refused", "cannot be read"
    )
    assert server.requests and {method for method, _ in server.requests} == {"GET"}


@pytest.mark.parametrize(
    ("command", "needle"),
    [
        (("promote", "rollback", "churn"), "rollback paycycle-churn: refused"),
        (("promote", "history", "churn"), "history of paycycle-churn"),
    ],
)
def test_cli_rollback_and_history_during_an_outage_are_one_line_exit_4(
    tmp_path: Path, mlflow_http_defaults, command: tuple[str, ...], needle: str
) -> None:
    """Before: both died on MLflow's own exception (exit 1, "--debug shows the traceback")."""
    import shutil

    from tests.code.test_cli_errors import assert_one_line_error, paycycle
    from tests.conftest import PROJECT_ROOT

    shutil.copy(PROJECT_ROOT / "params.yaml", tmp_path / "params.yaml")
    with failing_server(503) as server:
        done = paycycle(tmp_path, *command, timeout=120, MLFLOW_TRACKING_URI=server.url)
    assert_one_line_error(done, EXIT_UNAVAILABLE, needle, "cannot be read")
    assert server.requests  # it asked, and moved nothing: no alias was written
    assert not any(m != "GET" and "alias" in path for m, path in server.requests)

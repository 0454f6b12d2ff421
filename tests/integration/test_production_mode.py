"""Production mode gives the same results as embedded mode for the same seed.

Embedded mode is the defaults: SQLite store, SQLite MLflow and SQLite Optuna files inside the
project. Production mode is what docker-compose runs: the subscription store on PostgreSQL
(`PAYCYCLE_DATABASE_URL`), MLflow tracking and registry on a real `mlflow server` process with a
PostgreSQL backend and proxied artifacts (`MLFLOW_TRACKING_URI`), and the Optuna study on
PostgreSQL (`PAYCYCLE_OPTUNA_STORAGE`). Each mode is a separate temp project holding a copy of
the same simulation; both run features → tune → train → promote → store load → one billing
day's notices, in this process, one after the other. The MLflow server starts first and boots
while the embedded mode runs.

Training sets `keras.utils.set_random_seed` and TensorFlow op determinism, the Optuna sampler is
seeded and nothing a model sees comes from a backend, so the figures must agree to float
precision; the test also checks that every production figure really lives in PostgreSQL or
behind the server and that no SQLite file was written in the production project.
"""

from __future__ import annotations

import datetime as dt
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from paycycle import config
from paycycle.sim.simulator import SimSpec, simulate
from tests import mlflow_server
from tests.conftest import PG_ADMIN_URL, PROJECT_ROOT, _admin_engine

pytestmark = [
    pytest.mark.integration,
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.timeout(600),
]

SIM = SimSpec(customers=2_000, months=12, seed=7)
SNAPSHOTS = 4  # three training snapshots + the holdout keep every fit short
TUNING = {
    "study": "parity",
    "trials": 2,
    "epochs": 2,
    "startup_trials": 1,  # trial 1 is a TPE draw from trial 0 as read back from the storage
    "warmup_epochs": 1,
    "seed": 13,
}
CHURN = {"epochs": 15, "patience": 3}
NOTICE_DAY = dt.date(2025, 12, 15)  # five notice kinds fall due on this day in SIM
ATOL = 1e-6
PRODUCTION_ENV = ("PAYCYCLE_DATABASE_URL", "MLFLOW_TRACKING_URI", "PAYCYCLE_OPTUNA_STORAGE")
LOCAL_FILES = ("mlruns.db", "optuna.db", "data/paycycle.db", "mlartifacts")


@contextmanager
def _database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database (as `pg_url` makes them), dropped afterwards."""
    from sqlalchemy import text

    name = f"paycycle_t_{uuid.uuid4().hex[:10]}"
    admin = _admin_engine()
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[mlflow_server.MlflowServer]:
    """`mlflow server` on a free port with a fresh PostgreSQL backend; started, not waited for."""
    with _database() as backend:
        srv = mlflow_server.start(backend, tmp_path / "mlflow-artifacts", tmp_path / "mlflow.log")
        try:
            yield srv
        finally:
            srv.stop()


@pytest.fixture()
def optuna_url() -> Iterator[str]:
    """A second fresh PostgreSQL database, for the Optuna study."""
    with _database() as url:
        yield url


@dataclass
class ModeRun:
    """What one mode produced."""

    settings: config.Settings
    tuned: Any  # training.churn.tune.TuneResult
    trials: list[tuple[str, float | None, dict[str, Any]]]  # (state, value, params) by number
    trained: Any  # training.churn.pipeline.TrainingResult
    logged_metrics: dict[str, float]  # latest value per key, read back from the backend
    auc_history: list[tuple[int, float]]  # every (step, value) logged as `auc`
    decision: Any  # training.registry.Decision
    champion: str | None
    loaded: dict[str, int]
    rows: dict[str, int]
    notice_counts: pd.DataFrame
    due: pd.DataFrame


def _project(root: Path, sim: Path) -> config.Settings:
    """A temp project on a copy of `sim` with short tuning and training params."""
    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    params["data"].update(customers=SIM.customers, months=SIM.months, seed=SIM.seed)
    params["features"]["snapshots"] = SNAPSHOTS
    params["tuning"] = {**params["tuning"], **TUNING}
    params["churn"] = {**params["churn"], **CHURN}
    root.mkdir(parents=True)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.copytree(sim / "raw", root / "data" / "raw")
    shutil.copytree(sim / "truth", root / "data" / "truth")
    return config.load(root=root)


def _row_counts(engine, tables) -> dict[str, int]:  # type: ignore[no-untyped-def]
    from sqlalchemy import text

    with engine.connect() as conn:
        return {t: conn.execute(text(f'SELECT count(*) FROM "{t}"')).scalar_one() for t in tables}


def _run_mode(settings: config.Settings) -> ModeRun:
    """features → tune → train → promote → store load → the day's notices (dry run)."""
    import optuna

    from features.table import snapshot_dates, write_feature_table
    from inference import registry as models
    from inference.registry import CHAMPION
    from notify.daily import compute, run_day
    from paycycle.loader import load_raw
    from paycycle.store import RAW_LOAD_ORDER, make_engine, upgrade
    from training.churn.pipeline import promote_churn, train_from_table
    from training.churn.tune import tune

    d, fp = settings.params.data, settings.params.features
    dates = snapshot_dates(d.start_date, d.months, fp.snapshots, fp.horizon_days)
    write_feature_table(settings.raw_dir, settings.path(fp.path), dates)

    tuned = tune(settings)
    study = optuna.load_study(study_name=tuned.study, storage=settings.optuna_url)
    trials = [
        (t.state.name, t.value, t.params) for t in sorted(study.trials, key=lambda t: t.number)
    ]

    trained = train_from_table(settings)
    mlflow_client = models.client(settings)
    logged = dict(mlflow_client.get_run(trained.run_id).data.metrics)
    auc_history = sorted(
        (m.step, m.value) for m in mlflow_client.get_metric_history(trained.run_id, "auc")
    )
    decision = promote_churn(settings)
    champion = models.alias_version(settings, models.CHURN_MODEL, CHAMPION)

    upgrade(settings)
    engine = make_engine(settings.db_url)
    try:
        loaded = load_raw(engine, settings.raw_dir)
        rows = _row_counts(engine, RAW_LOAD_ORDER)
        due = compute(engine, settings, NOTICE_DAY)
    finally:
        engine.dispose()
    report = run_day(settings, NOTICE_DAY, dry_run=True)
    return ModeRun(
        settings,
        tuned,
        trials,
        trained,
        logged,
        auc_history,
        decision,
        champion,
        loaded,
        rows,
        report.counts,
        due,
    )


def _comparable(due: pd.DataFrame) -> pd.DataFrame:
    out = due.sort_values("dedup_key").reset_index(drop=True)
    out["cycle_date"] = pd.to_datetime(out["cycle_date"])
    return out


def _assert_figures_equal(a: dict[str, float], b: dict[str, float], what: str) -> None:
    assert a.keys() == b.keys(), what
    for key in a:
        assert b[key] == pytest.approx(a[key], abs=ATOL), f"{what}: {key}"


def test_production_backends_give_the_embedded_results(
    server: mlflow_server.MlflowServer,
    pg_url: str,
    optuna_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from optuna import get_all_study_names
    from sqlalchemy import create_engine, inspect, text

    from inference.registry import CHAMPION, CHURN_MODEL
    from paycycle.store import RAW_LOAD_ORDER, current_revision, head_revision, make_engine
    from training.tracking import PARENT_TAG

    sim = tmp_path / "sim"
    simulate(SIM, sim / "raw", sim / "truth")
    for name in (*PRODUCTION_ENV, "PAYCYCLE_ROOT", "PAYCYCLE_PARAMS_PATH", "PAYCYCLE_LINK_SECRET"):
        monkeypatch.delenv(name, raising=False)
    embedded = _run_mode(_project(tmp_path / "embedded", sim))

    tracking_url = server.wait_ready()
    monkeypatch.setenv("PAYCYCLE_DATABASE_URL", pg_url)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_url)
    monkeypatch.setenv("PAYCYCLE_OPTUNA_STORAGE", optuna_url)
    prod_settings = _project(tmp_path / "production", sim)
    assert (prod_settings.db_url, prod_settings.tracking_uri, prod_settings.optuna_url) == (
        pg_url,
        tracking_url,
        optuna_url,
    )
    production = _run_mode(prod_settings)

    # --- the same figures ------------------------------------------------------------------
    assert production.tuned.best_params == embedded.tuned.best_params
    assert production.tuned.best_value == pytest.approx(embedded.tuned.best_value, abs=ATOL)
    # the pruner (whichever `tuning.pruner` is) reads earlier trials back from the storage
    assert [(s, p) for s, _, p in production.trials] == [(s, p) for s, _, p in embedded.trials]
    assert [v for _, v, _ in production.trials] == pytest.approx(
        [v for _, v, _ in embedded.trials], abs=ATOL
    )
    counts = (embedded.tuned.complete, embedded.tuned.pruned, embedded.tuned.failed)
    assert (production.tuned.complete, production.tuned.pruned, production.tuned.failed) == counts
    assert counts[0] + counts[1] == TUNING["trials"] and counts[2] == 0

    assert embedded.trained.metrics["auc"] > 0.7  # a real model, not two equal failures
    _assert_figures_equal(embedded.trained.metrics, production.trained.metrics, "holdout")
    _assert_figures_equal(embedded.logged_metrics, production.logged_metrics, "logged metrics")
    # `auc` is the holdout AUC only (learning curves are `epoch_*`), so the run's `auc` — what
    # the MLflow UI and `search_runs` rank by — is the holdout figure
    assert [s for s, _ in production.auc_history] == [0] == [s for s, _ in embedded.auc_history]
    assert production.logged_metrics["auc"] == pytest.approx(
        production.trained.metrics["auc"], abs=ATOL
    )

    assert embedded.decision.promoted, embedded.decision.reason
    assert production.decision.promoted, production.decision.reason
    assert production.decision.version == embedded.decision.version == "1"
    assert production.champion == embedded.champion == "1"
    _assert_figures_equal(embedded.decision.metrics, production.decision.metrics, "promotion")

    assert production.loaded == embedded.loaded == production.rows == embedded.rows
    assert production.rows["customers"] == SIM.customers

    notices = embedded.notice_counts
    pd.testing.assert_frame_equal(production.notice_counts, notices)
    assert (notices["due"] > 0).sum() >= 3, notices  # several kinds, not a trivial empty day
    assert notices["due"].sum() == len(embedded.due)
    assert (notices[["pending", "sending", "sent", "failed", "dead"]] == 0).all().all()  # dry run
    pd.testing.assert_frame_equal(_comparable(production.due), _comparable(embedded.due))

    # --- production really ran on the production backends ---------------------------------
    for name in LOCAL_FILES:
        assert (embedded.settings.root / name).exists(), name
        assert not (production.settings.root / name).exists(), name

    mlflow_db = create_engine(server.backend_uri)
    try:
        with mlflow_db.connect() as conn:
            run = conn.execute(
                text("SELECT status, artifact_uri FROM runs WHERE run_uuid = :r"),
                {"r": production.trained.run_id},
            ).one()
            auc = conn.execute(
                text("SELECT value FROM metrics WHERE run_uuid = :r AND key = 'auc' AND step = 0"),
                {"r": production.trained.run_id},
            ).scalar_one()
            children = conn.execute(
                text("SELECT count(*) FROM tags WHERE key = :k AND value = :v"),
                {"k": PARENT_TAG, "v": production.tuned.parent_run_id},
            ).scalar_one()
            aliases = dict(
                conn.execute(
                    text("SELECT alias, version FROM registered_model_aliases WHERE name = :n"),
                    {"n": CHURN_MODEL},
                ).all()
            )
    finally:
        mlflow_db.dispose()
    assert run.status == "FINISHED"
    assert run.artifact_uri.startswith("mlflow-artifacts:")  # proxied by the server
    assert auc == pytest.approx(production.trained.metrics["auc"], abs=ATOL)
    assert children == TUNING["trials"]  # every trial is a child run of the tuning run
    assert aliases[CHAMPION] == int(production.champion)
    assert any(server.artifacts_dir.rglob("MLmodel"))  # the model files went through the server

    assert get_all_study_names(storage=optuna_url) == [TUNING["study"]]

    assert current_revision(pg_url) == head_revision()
    store = make_engine(pg_url)
    try:
        assert set(RAW_LOAD_ORDER) | {"notices", "scores"} <= set(inspect(store).get_table_names())
        assert _row_counts(store, RAW_LOAD_ORDER) == production.rows
    finally:
        store.dispose()

"""`paycycle tune --workers 2` on one PostgreSQL study, with a worker killed mid-trial; pruners."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from paycycle import config
from paycycle.config import TuningParams

TUNING = {
    "study": "t",
    "trials": 4,
    "epochs": 3,
    "startup_trials": 2,
    "warmup_epochs": 1,
    "heartbeat_interval": 1,
    "grace_period": 3,
    "max_retry": 2,
    "seed": 1,
}


@pytest.fixture()
def root(small_sim: Path, tmp_path: Path) -> Path:
    from features.table import snapshot_dates, write_feature_table

    params = yaml.safe_load((Path(__file__).resolve().parents[2] / "params.yaml").read_text())
    params["tuning"] = TUNING
    params["churn"] = {**params["churn"], "hidden_units": [16], "patience": 2}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    shutil.copytree(small_sim / "truth", tmp_path / "data" / "truth")
    dates = snapshot_dates(dt.date(2025, 1, 1), 12, 2)  # two snapshots keep trials short
    write_feature_table(
        small_sim / "raw", tmp_path / "data" / "features" / "features.parquet", dates
    )
    return tmp_path


def _env(root: Path, pg_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "PAYCYCLE_ROOT": str(root),
        "PAYCYCLE_OPTUNA_STORAGE": pg_url,
        "MLFLOW_TRACKING_URI": f"sqlite:///{root}/mlruns.db",
    }


@pytest.fixture()
def storage(pg_url: str):
    """One Optuna storage (one connection pool) for the test's polling: a URL per call would
    open a pool per call and run the server out of connections."""
    import optuna

    rdb = optuna.storages.RDBStorage(pg_url)
    yield rdb
    rdb.engine.dispose()


def _study(storage):
    import optuna

    return optuna.load_study(study_name=TUNING["study"], storage=storage)


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL `proc`'s process group (it and the workers it started), if any is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def _finished(study) -> int:
    from optuna.trial import TrialState

    return sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.trials)


@pytest.mark.postgres
@pytest.mark.slow
def test_two_workers_one_killed_mid_trial_still_complete_the_study(
    root: Path, pg_url: str, storage, request: pytest.FixtureRequest
) -> None:
    """`paycycle tune --workers 2`: SIGKILL one worker mid-trial; the budget is still met."""
    from optuna.trial import TrialState

    tuner = subprocess.Popen(
        [sys.executable, "-m", "paycycle", "tune", "--workers", "2", "--trials", "6"],
        env=_env(root, pg_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its workers share its group: one killpg ends all if we fail
    )
    request.addfinalizer(lambda: _kill_group(tuner))
    victim = None
    deadline = time.monotonic() + 180
    while victim is None and time.monotonic() < deadline and tuner.poll() is None:
        time.sleep(0.3)
        try:
            running = _study(storage).get_trials(states=(TrialState.RUNNING,))
        except Exception:  # study not created yet
            continue
        trial = next((t for t in running if t.user_attrs.get("pid")), None)
        if trial is None:
            continue
        pid = trial.user_attrs["pid"]
        try:
            os.kill(pid, signal.SIGSTOP)  # frozen: its trial cannot end between check and kill
        except ProcessLookupError:  # that worker is gone already
            continue
        still_running = False
        try:
            still_running = _study(storage).trials[trial.number].state == TrialState.RUNNING
        finally:  # kill it (a worker this test started, via the tuner), or let it go on; never
            # leave it frozen, whatever the check raised
            os.kill(pid, signal.SIGKILL if still_running else signal.SIGCONT)
        if still_running:
            victim = pid
    assert victim is not None, "no running trial seen"
    out, err = tuner.communicate(timeout=300)
    assert tuner.returncode == 0, err[-2000:]
    study = _study(storage)
    assert _finished(study) >= 6
    killed = [t for t in study.trials if t.user_attrs.get("pid") == victim]
    assert any(t.state == TrialState.FAIL for t in killed)  # its heartbeat stopped
    assert not study.get_trials(states=(TrialState.RUNNING,))
    assert len({t.user_attrs["pid"] for t in study.trials}) >= 2  # several workers ran trials
    assert "best val AUC" in out
    # every trial is an MLflow child run of the tuning run
    settings = config.load(root=root, mlflow_tracking_uri=f"sqlite:///{root}/mlruns.db")
    from training.tracking import search_runs

    runs = search_runs(settings)
    parent = runs[runs["tags.mlflow.runName"] == "tune-t"]["run_id"].item()
    children = runs[runs["tags.mlflow.parentRunId"] == parent]
    assert len(children) >= 6


@pytest.mark.parametrize("kind", ["median", "asha", "hyperband"])
def test_each_pruner_stops_a_clearly_worse_trial_only_after_warmup(kind: str) -> None:
    """`tuning.pruner`: a trial far below six finished ones is pruned, never before warm-up."""
    import optuna

    from training.churn.tune import create_study

    tuning = TuningParams(pruner=kind, warmup_epochs=2, startup_trials=2, seed=1)
    study = create_study(optuna.storages.InMemoryStorage(), "p", tuning, epochs=10)

    def objective(trial: optuna.Trial, level: float) -> float:
        for step in range(10):
            trial.report(level, step)
            if trial.should_prune():
                trial.set_user_attr("pruned_at", step)
                raise optuna.TrialPruned()
        return level

    for _ in range(6):
        study.optimize(lambda t: objective(t, 0.70), n_trials=1)
    study.optimize(lambda t: objective(t, 0.50), n_trials=1)
    last = study.trials[-1]
    assert last.state == optuna.trial.TrialState.PRUNED
    assert last.user_attrs["pruned_at"] >= tuning.warmup_epochs
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials[:-1])


def test_pruning_callback_reports_the_best_val_auc_so_far() -> None:
    """The pruner sees the running best (what the trial returns), not one noisy epoch."""
    from training.churn.tune import pruning_callback

    class Trial:
        reported: list[tuple[int, float]] = []

        def report(self, value: float, step: int) -> None:
            self.reported.append((step, value))

        def should_prune(self) -> bool:
            return False

    trial = Trial()
    callback = pruning_callback(trial)
    for epoch, auc in enumerate([0.60, 0.70, 0.65, 0.72]):
        callback.on_epoch_end(epoch, {"val_auc": auc})
    assert trial.reported == [(0, 0.60), (1, 0.70), (2, 0.70), (3, 0.72)]

"""Promotion history under the faults that used to lose it: concurrent promotions, long records.

The old layout numbered history tags `len(history) + 1` on the registered model, so two
promotions at once wrote the same tag (one decision lost), and tag values were cut at 5,000
characters. Now each decision is its own MLflow run; these tests race real writers against a
real (temporary SQLite) MLflow store and read the history back.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from paycycle import config

NAME = "paycycle-churn"
WORKER = Path(__file__).resolve().parent / "history_worker.py"
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _settings(root: Path) -> config.Settings:
    return config.load(root=root, mlflow_tracking_uri=f"sqlite:///{root}/mlruns.db")


def _decision(label: str, i: int):
    from training.registry import REFUSED, Decision

    return Decision(NAME, REFUSED, None, None, f"{label}-{i}", {"auc": 0.7 + i / 1000}, who=label)


def test_two_threads_promoting_at_once_lose_nothing(tmp_path: Path) -> None:
    from training.registry import history, record_decision

    settings = _settings(tmp_path)
    per_thread = 8
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def promoter(label: str) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                record_decision(settings, _decision(label, i))
        except BaseException as exc:  # surfaced below, with the thread's error
            errors.append(exc)

    threads = [threading.Thread(target=promoter, args=(label,)) for label in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert not errors, errors
    events = history(NAME, settings)
    reasons = [e.reason for e in events]
    expected = {f"{label}-{i}" for label in "ab" for i in range(per_thread)}
    assert len(reasons) == 2 * per_thread and set(reasons) == expected
    # each writer's own decisions stay in the order it made them
    for label in "ab":
        assert [r for r in reasons if r.startswith(label)] == [
            f"{label}-{i}" for i in range(per_thread)
        ]
    assert events[0].metrics == {"auc": pytest.approx(0.7)}


def _race_two_processes(settings: config.Settings, work: Path, count: int = 6) -> None:
    """Two promoter processes released together, each recording `count` decisions."""
    go = work / "go"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(work), settings.tracking_uri, label, str(count), go],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for label in ("p", "q")
    ]
    go.touch()
    outputs = [p.communicate(timeout=300) for p in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-2000:]


@pytest.mark.slow
def test_two_processes_promoting_at_once_lose_nothing(tmp_path: Path) -> None:
    from inference.registry import client
    from training.registry import history, record_decision

    settings = _settings(tmp_path)
    # the store exists (a model was trained before anyone promotes), the history experiment
    # does not yet: both processes race to create it too
    client(settings).search_experiments()
    _race_two_processes(settings, tmp_path)

    reasons = [e.reason for e in history(NAME, settings)]
    assert sorted(reasons) == sorted(f"{label}-{i}" for label in "pq" for i in range(6))
    # and the history keeps growing after the race
    record_decision(settings, _decision("after", 0))
    assert history(NAME, settings)[-1].reason == "after-0"


@pytest.mark.slow
@pytest.mark.postgres
def test_racing_promotions_through_an_mlflow_server_on_postgres(
    pg_url: str, tmp_path: Path
) -> None:
    """Production layout: `mlflow server`, PostgreSQL backend, proxied artifacts."""
    from tests import mlflow_server
    from training.registry import history, record_decision

    srv = mlflow_server.start(pg_url, tmp_path / "artifacts", tmp_path / "mlflow.log")
    try:
        url = srv.wait_ready()
        settings = config.load(root=tmp_path, mlflow_tracking_uri=url)
        _race_two_processes(settings, tmp_path)
        long_reason = "behavioural checks failed: " + "; ".join(["x" * 90] * 100)
        decision = _decision("long", 0)
        decision.reason = long_reason
        record_decision(settings, decision)  # past the tag limit: kept as a proxied artifact

        events = history(NAME, settings)
        expected = sorted(f"{label}-{i}" for label in "pq" for i in range(6))
        assert sorted(e.reason for e in events[:-1]) == expected
        assert events[-1].reason == long_reason
    finally:
        srv.stop()


def test_a_reason_longer_than_an_mlflow_tag_is_kept_whole(tmp_path: Path) -> None:
    from training.registry import history, record_decision

    settings = _settings(tmp_path)
    failed = [f"customer {i}: churn probability fell when failed payments rose" for i in range(300)]
    long_reason = "behavioural checks failed: " + "; ".join(failed)
    assert len(long_reason) > 8_000  # past MLflow's run-tag limit and the old 5,000 cut
    decision = _decision("long", 0)
    decision.reason = long_reason
    record_decision(settings, decision)
    record_decision(settings, _decision("short", 1))

    events = history(NAME, settings)
    assert [e.reason for e in events] == [long_reason, "short-1"]

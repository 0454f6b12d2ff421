"""Batch scoring flow: one Prefect task per raw partition, run on Dask.

`run_batch_score` picks the task runner: `prefect_dask.DaskTaskRunner` connected to
`PAYCYCLE_DASK_ADDRESS` (`settings.dask_address`, e.g. the compose `dask-scheduler`) when set,
else a temporary `LocalCluster` sized by `params.yaml` `scoring:` (one single-threaded worker
per core, `memory_limit` each). Each task calls `inference.batch.score_partition`, the same
function the single-process path loops over, so both give the same rows.

Failures: a worker that dies mid-partition makes Dask reschedule the partition on another
worker; an exception inside a partition is retried by Prefect (`scoring.task_retries`). Both
re-run a whole partition, which is safe because its writes are idempotent (file replaced,
rows upserted by primary key).

Dask workers run the Prefect task engine in their own processes, so they must reach the same
Prefect API as the flow. Without `PREFECT_API_URL`, `prefect_api()` starts one temporary
server for the run and hands its URL to the workers (otherwise each worker process would start
its own ephemeral server).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prefect import flow, task, unmapped
from prefect.cache_policies import NO_CACHE

DEPLOYMENT_NAME = "batch-score"


@task(retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE, log_prints=True)
def score_partition_task(
    settings: Any, part: str, as_of: dt.date, versions: Any, out_dir: str, store: bool
) -> dict[str, Any]:
    """Features + scores for one partition, written to Parquet (and the store)."""
    from dataclasses import asdict

    from inference.batch import score_partition

    result = score_partition(settings, part, as_of, versions, Path(out_dir), store)
    print(f"{part}: {result.rows} customers in {result.seconds:.1f}s (pid {result.pid})")
    return asdict(result)


@flow(name="batch-score", log_prints=True)
def batch_score(
    as_of: dt.date,
    out_dir: str | None = None,
    store: bool = True,
    root: str | None = None,
) -> dict[str, Any]:
    """Score every customer at risk on `as_of` with the champion models.

    Args:
        as_of: scoring date.
        out_dir: base folder for `as_of=DATE/part-NNNNN.parquet` (default `scoring.out_dir`).
        store: also upsert into the store's `scores` table.
        root: project root (default: the installed project / `$PAYCYCLE_ROOT`).

    Returns:
        `inference.batch.summarise` of the run (rows, partitions, customers/min, peak RSS).
    """
    from inference.batch import PartResult, resolve_versions, summarise
    from inference.score_io import check_store, clear_stale, list_partitions
    from paycycle import config

    start = time.perf_counter()
    settings = config.load(root=root) if root else config.load()
    p = settings.params.scoring
    out = Path(out_dir) if out_dir else settings.path(p.out_dir)
    parts = list_partitions(settings.raw_dir)
    if store:
        check_store(settings)
    versions = resolve_versions(settings)
    clear_stale(out, as_of, parts)
    print(
        f"{as_of}: {len(parts)} partitions, churn v{versions.churn}, "
        f"recommender {versions.recommender or 'none'}"
    )
    run = score_partition_task.with_options(retries=p.task_retries)
    futures = run.map(
        unmapped(settings),
        parts,
        unmapped(as_of),
        unmapped(versions),
        unmapped(str(out)),
        unmapped(store),
    )
    results = [PartResult(**f.result()) for f in futures]
    summary = summarise(results, time.perf_counter() - start)
    print(f"{summary['rows']} customers scored at {summary['customers_per_min']:,.0f}/min")
    return summary


def task_runner(settings: Any, address: str | None = None, workers: int | None = None) -> Any:
    """The Dask task runner: an existing scheduler if `address`/`PAYCYCLE_DASK_ADDRESS` is set,
    else a temporary `LocalCluster` of `workers` (default `scoring.workers` or one per core)."""
    from prefect_dask import DaskTaskRunner

    address = address or settings.dask_address
    if address:
        return DaskTaskRunner(address=address)
    p = settings.params.scoring
    return DaskTaskRunner(
        cluster_kwargs={
            "n_workers": workers or p.workers or os.cpu_count() or 1,
            "threads_per_worker": p.threads_per_worker,
            "memory_limit": p.memory_limit,
            "processes": True,
            "dashboard_address": ":0",
        }
    )


@contextlib.contextmanager
def prefect_api() -> Iterator[str]:
    """Make sure flow and Dask workers share one Prefect API (see the module docstring)."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    url = PREFECT_API_URL.value()
    if url:
        yield url
        return
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    server.start(timeout=180)
    try:
        with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
            yield server.api_url
            from prefect.logging.handlers import APILogWorker

            APILogWorker.drain_all(timeout=5)  # send the run's logs while the server is up
    finally:
        server.stop()


def run_batch_score(
    as_of: dt.date,
    out_dir: str | None = None,
    store: bool = True,
    root: str | None = None,
    address: str | None = None,
    workers: int | None = None,
) -> dict[str, Any]:
    """`paycycle score`: run `batch_score` on Dask (existing cluster or a LocalCluster)."""
    from paycycle import config

    settings = config.load(root=root) if root else config.load()
    runner = task_runner(settings, address, workers)
    with prefect_api():
        return batch_score.with_options(task_runner=runner)(
            as_of=as_of, out_dir=out_dir, store=store, root=root
        )

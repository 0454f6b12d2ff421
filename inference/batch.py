"""Batch scoring: one partition of the raw tables → features → champion scores → Parquet + store.

The simulator writes every raw table in the same customer chunks (`<table>/part-NNNNN.parquet`
holds one contiguous customer-id range in *every* table), and features are per customer, so a
partition is scored from its own parts alone. `score_partition` is the whole unit of work; the
single-process loop (`score_all`) and the Dask flow (`flows/score.py`) both call it, so a cluster
run and a local run produce the same rows.

* Models: the driver resolves the champion aliases to versions once (`resolve_versions`); every
  partition is then scored with exactly those versions, even if an alias moves mid-run. Each
  process loads a version once (`load_models`, a module-level cache keyed by tracking URI and
  versions), through the registry's compiled SavedModel path.
* Memory: a worker holds one partition's events, features and scores at a time and returns only
  a small `PartResult`; 10M customers are 40 partitions of the default 250k, never all at once.
* Idempotence: the partition file is written to a temporary name and renamed over the old one,
  and the store upsert (`upsert_scores`, primary key (customer_id, as_of)) runs in one
  transaction, so a partition recomputed after a crash or a killed worker replaces its rows
  instead of duplicating them.
* Recommendations: when `paycycle-recommender@champion` exists, its top `scoring.top_k` items
  (`[{"item", "kind", "score"}, ...]` as JSON) go in `recommendations`; otherwise that column and
  `recommender_model_version` stay null and the churn scores are unchanged.
* Prediction ids: each row gets one (`inference.prediction_ids.new_ids`, as the service's
  answers do), so monitoring can join the prediction to the customer's realized outcome.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from inference.prediction_ids import new_ids
from inference.registry import CHAMPION, CHURN_MODEL, RECOMMENDER_MODEL, alias_version, load_scorer
from inference.score_io import (
    check_store,
    clear_stale,
    list_partitions,
    load_partition,
    upsert_scores,
    write_partition,
)
from paycycle.config import Settings
from paycycle.errors import ConfigError


@dataclass(frozen=True)
class ModelVersions:
    """The registered versions a run scores with (resolved once, by the driver)."""

    churn: str
    recommender: str | None = None


@dataclass
class Models:
    """Loaded scorers for one `ModelVersions`."""

    versions: ModelVersions
    churn: Callable[[Any], np.ndarray]
    recommender: Any | None = None  # inference.recommender.Recommender


@dataclass(frozen=True)
class PartResult:
    """What scoring one partition did (small: this is all a worker sends back)."""

    part: str
    rows: int
    seconds: float
    read_seconds: float
    feature_seconds: float
    score_seconds: float
    write_seconds: float
    path: str
    stored: int
    pid: int
    model_loads: int  # models loaded by this process so far (1 per version set = cached)
    peak_rss_bytes: int  # this process's peak resident set size while scoring the partition


_MODELS: dict[tuple[str, ModelVersions], Models] = {}
_LOADS = 0


# --- models -------------------------------------------------------------------------------


def resolve_versions(settings: Settings) -> ModelVersions:
    """The versions `champion` points at now (the recommender is optional).

    Raises:
        ConfigError: no churn champion is registered.
    """

    churn = alias_version(settings, CHURN_MODEL, CHAMPION)
    if churn is None:
        raise ConfigError(
            f"{CHURN_MODEL}@{CHAMPION}: no champion registered in {settings.tracking_uri} "
            "(train and promote one first)"
        )
    return ModelVersions(churn, alias_version(settings, RECOMMENDER_MODEL, CHAMPION))


def _limit_tf_threads(threads: int) -> None:
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # TF already initialised in this process: keep its pools
        pass


def load_models(settings: Settings, versions: ModelVersions) -> Models:
    """The scorers for `versions`, loaded once per process and then served from a cache."""
    global _LOADS
    key = (settings.tracking_uri, versions)
    if key not in _MODELS:
        _limit_tf_threads(settings.params.scoring.tf_threads)
        churn, _ = load_scorer(CHURN_MODEL, settings=settings, version=versions.churn)
        rec = None
        if versions.recommender is not None:
            rec, _ = load_scorer(RECOMMENDER_MODEL, settings=settings, version=versions.recommender)
        _MODELS.clear()  # one version set per process: an old champion is not kept alive
        _MODELS[key] = Models(versions, churn, rec)
        _LOADS += 1
    return _MODELS[key]


def model_loads() -> int:
    """How many times this process loaded a model set (the test checks it stays at one)."""
    return _LOADS


# --- scoring ------------------------------------------------------------------------------


def _in_batches(fn: Callable[[pd.DataFrame], Any], frame: pd.DataFrame, rows: int) -> list[Any]:
    return [fn(frame.iloc[i : i + rows]) for i in range(0, len(frame), rows)]


def empty_scores() -> pd.DataFrame:
    """A zero-row frame with the score columns and dtypes."""
    return pd.DataFrame(
        {
            "customer_id": pd.Series(dtype="int64"),
            "as_of": pd.Series(dtype="object"),
            "churn_probability": pd.Series(dtype="float64"),
            "recommendations": pd.Series(dtype="object"),
            "churn_model_version": pd.Series(dtype="object"),
            "recommender_model_version": pd.Series(dtype="object"),
            "prediction_id": pd.Series(dtype="object"),
        }
    )


def score_events(
    events: dict[str, pd.DataFrame],
    as_of: dt.date,
    models: Models,
    batch_rows: int,
    top_k: int,
    timings: dict[str, float] | None = None,
) -> pd.DataFrame:
    """Score every customer at risk on `as_of` in one partition's events.

    Args:
        events: the partition's event tables (`load_partition`).
        as_of: scoring date.
        models: loaded scorers (`load_models`).
        batch_rows: rows per model call.
        top_k: recommendations kept per customer.
        timings: if given, receives `features` and `score` seconds.

    Returns:
        One row per customer with `SCORE_COLUMNS`; `recommendations` is a JSON list or None.
    """
    from features.build import active_customers, build_features

    timings = {} if timings is None else timings
    t0 = time.perf_counter()
    if active_customers(events, as_of).empty:
        timings.update(features=time.perf_counter() - t0, score=0.0)
        return empty_scores()
    feats = build_features(events, as_of)
    t1 = time.perf_counter()
    churn = np.concatenate(_in_batches(models.churn, feats, batch_rows))
    out = pd.DataFrame(
        {
            "customer_id": feats["customer_id"].to_numpy(np.int64),
            "as_of": as_of,
            "churn_probability": churn,
            "recommendations": None,
            "churn_model_version": models.versions.churn,
            "recommender_model_version": models.versions.recommender,
            "prediction_id": new_ids(len(feats)),
        }
    )
    if models.recommender is not None:
        out["recommendations"] = _recommend(events, as_of, models, batch_rows, top_k, feats)
    timings.update(features=t1 - t0, score=time.perf_counter() - t1)
    return out


def _recommend(
    events: dict[str, pd.DataFrame],
    as_of: dt.date,
    models: Models,
    batch_rows: int,
    top_k: int,
    feats: pd.DataFrame,
) -> list[str]:
    """Top-k items per customer (JSON), in the order of `feats`."""
    from features.recommender import build_rec_features

    rec = build_rec_features(events, as_of).set_index("customer_id").loc[feats["customer_id"]]
    ranked = _in_batches(lambda b: models.recommender.rank(b, top_k), rec.reset_index(), batch_rows)
    return [json.dumps(items, separators=(",", ":")) for batch in ranked for items in batch]


# --- the unit of work ---------------------------------------------------------------------


def reset_peak_rss() -> bool:
    """Start a new peak-RSS window for this process (Linux `clear_refs`); False if unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int:
    """Peak resident set size since `reset_peak_rss` (Linux `VmHWM`), else since start."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def score_partition(
    settings: Settings,
    part: str,
    as_of: dt.date,
    versions: ModelVersions,
    out_dir: Path,
    store: bool = True,
) -> PartResult:
    """Score one raw partition and write its scores (Parquet, and the store when `store`).

    Safe to run again for the same partition (the file is replaced, the rows upserted).

    Args:
        settings: paths (`raw_dir`), `scoring` params, tracking and database URLs.
        part: partition name, e.g. `part-00003` (see `list_partitions`).
        as_of: scoring date; features use only events strictly before it.
        versions: the model versions of this run (`resolve_versions`).
        out_dir: base folder; the file goes to `<out_dir>/as_of=DATE/<part>.parquet`.
        store: also upsert into the store's `scores` table (`settings.db_url`).

    Returns:
        Counts, timings, and this process's model loads and peak RSS.
    """
    p = settings.params.scoring
    start = time.perf_counter()
    reset_peak_rss()  # the peak reported is this partition's (models included)
    models = load_models(settings, versions)
    t0 = time.perf_counter()
    events = load_partition(settings.raw_dir, part)
    timings: dict[str, float] = {}
    scores = score_events(events, as_of, models, p.batch_rows, p.top_k, timings)
    del events
    t1 = time.perf_counter()
    path = write_partition(scores, out_dir, as_of, part)
    stored = 0
    if store:
        from paycycle.store import make_engine

        engine = make_engine(settings.db_url)
        try:
            stored = upsert_scores(engine, scores, path)
        finally:
            engine.dispose()
    t2 = time.perf_counter()
    return PartResult(
        part=part,
        rows=len(scores),
        seconds=t2 - start,
        read_seconds=t1 - t0 - timings["features"] - timings["score"],
        feature_seconds=timings["features"],
        score_seconds=timings["score"],
        write_seconds=t2 - t1,
        path=str(path),
        stored=stored,
        pid=os.getpid(),
        model_loads=model_loads(),
        peak_rss_bytes=peak_rss_bytes(),
    )


def score_all(
    settings: Settings,
    as_of: dt.date,
    out_dir: Path | None = None,
    store: bool = True,
    versions: ModelVersions | None = None,
    progress: Callable[[PartResult], None] | None = None,
) -> list[PartResult]:
    """Score every partition in this process, one after the other (the reference path).

    Args:
        settings: as for `score_partition`.
        as_of: scoring date.
        out_dir: base output folder (default `scoring.out_dir`).
        store: also upsert into the store.
        versions: model versions (default: the champions now).
        progress: called after each partition.

    Returns:
        One result per partition, in partition order.
    """
    out_dir = out_dir or settings.path(settings.params.scoring.out_dir)
    parts = list_partitions(settings.raw_dir)
    if store:
        check_store(settings)
    versions = versions or resolve_versions(settings)
    clear_stale(out_dir, as_of, parts)
    results = []
    for part in parts:
        results.append(score_partition(settings, part, as_of, versions, out_dir, store))
        if progress:
            progress(results[-1])
    return results


def summarise(results: list[PartResult], seconds: float) -> dict[str, Any]:
    """Totals of a run: rows, partitions, wall time, customers/min, workers and their peak RSS."""
    rows = sum(r.rows for r in results)
    peak: dict[int, int] = {}
    for r in results:
        peak[r.pid] = max(peak.get(r.pid, 0), r.peak_rss_bytes)
    return {
        "rows": rows,
        "partitions": len(results),
        "seconds": round(seconds, 3),
        "customers_per_min": rows / seconds * 60 if seconds > 0 else 0.0,
        "workers": len(peak),
        "peak_rss_gib_per_worker": max(peak.values(), default=0) / 2**30,
        "stored": sum(r.stored for r in results),
        "parts": [asdict(r) for r in results],
    }

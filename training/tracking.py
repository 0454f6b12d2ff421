"""The one module that talks to MLflow: runs, per-epoch metrics, model logging, registry calls.

Entry points call `configure(settings)` (tracking and registry URI from settings: the
`MLFLOW_TRACKING_URI` server or the project's SQLite file); nothing happens at import.
`training/registry.py` builds promotion, rollback and history on the small registry helpers here,
so both registered models (`paycycle-churn`, `paycycle-recommender`) share one implementation.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pandas as pd

from inference.registry import ARTIFACT_TAG, CHURN_MODEL, SCORER_DIR, client, configure
from paycycle.config import Settings

CHURN_EXPERIMENT = CHURN_MODEL  # one MLflow experiment per registered model
MODEL_ARTIFACT = "model"
PARENT_TAG = "mlflow.parentRunId"


def git_commit(root: Path) -> str | None:
    """HEAD of the project's git repository (with `-dirty` when the tree has changes)."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{sha}-dirty" if dirty else sha


def file_hash(path: Path) -> str:
    """MD5 of a file (DVC's hash), used when no DVC data hash is passed in."""
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def resolve_data_hash(settings: Settings, data_hash: str | None, path: Path | None) -> str | None:
    """The given hash, else the md5 DVC recorded for `path`, else the file's own MD5."""
    if data_hash:
        return data_hash
    if path is None:
        return None
    try:
        from paycycle.versioning import data_hash as dvc_hash

        return str(dvc_hash(path, settings.root))
    except Exception:  # not a DVC-recorded output (BYO CSV, fresh project): hash the file
        return file_hash(path) if Path(path).exists() else None


def experiment_id(settings: Settings, experiment: str) -> str:
    """The id of `experiment`, created (artifacts under the project when local) if missing.

    Safe when two processes create it at once: the loser of the race reads the winner's.
    """
    from mlflow.exceptions import MlflowException

    c = client(settings)
    found = c.get_experiment_by_name(experiment)
    if found is not None:
        return found.experiment_id
    location = None
    uri = settings.tracking_uri
    if uri.startswith("sqlite:") or uri.startswith("file:"):  # keep artifacts in the project
        location = settings.path("mlartifacts").as_uri()
    try:
        return c.create_experiment(experiment, artifact_location=location)
    except MlflowException:
        found = c.get_experiment_by_name(experiment)
        if found is None:
            raise
        return found.experiment_id


def dataset_digest(settings: Settings, path: Path) -> tuple[str | None, str]:
    """The md5 DVC recorded for `path` (a file or directory) and where the digest came from.

    DVC's record (`dvc.lock` or `<path>.dvc`) is used when it still matches the data; a stale
    or missing record gives the md5 DVC would record now (same algorithm), never a wrong one.

    Returns:
        (digest or None when `path` does not exist, a note for the run's `dataset_digest` tag).
    """
    from paycycle import versioning

    path = Path(path)
    if not path.exists():
        return None, f"{path}: not found"
    current = versioning.content_hash(path.resolve(), settings.root)
    try:
        recorded = versioning.data_hash(path, settings.root)
    except Exception:  # not a DVC output (a user's CSV, a fresh project) or outside the project
        return current, "md5 of the data (not recorded by DVC)"
    if recorded == current:
        return recorded, "DVC md5 (dvc.lock / .dvc record)"
    return current, f"md5 of the data; DVC's record {recorded} is stale (run `dvc commit`)"


def ensure_experiment(settings: Settings, experiment: str) -> str:
    """Make `experiment` current, creating it with artifacts under the project when local."""
    import mlflow

    exp_id = experiment_id(settings, experiment)
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


@contextmanager
def start_run(
    settings: Settings,
    run_name: str,
    experiment: str = CHURN_EXPERIMENT,
    parent_run_id: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> Iterator[Any]:
    """An MLflow run in `experiment` (a child of `parent_run_id` when given, even cross-process)."""
    import mlflow

    ensure_experiment(settings, experiment)
    all_tags = {**(tags or {})}
    if parent_run_id:
        all_tags[PARENT_TAG] = parent_run_id
    commit = git_commit(settings.root)
    if commit:
        all_tags["git_commit"] = commit
    # in-process children (one tuning worker) nest under the active run; other processes only
    # carry the parent tag
    nested = mlflow.active_run() is not None
    with mlflow.start_run(run_name=run_name, tags=all_tags, nested=nested) as run:
        yield run


def log_params(params: Mapping[str, Any]) -> None:
    import mlflow

    mlflow.log_params(
        {k: json.dumps(v) if isinstance(v, list | tuple) else v for k, v in params.items()}
    )


def log_metrics(
    metrics: Mapping[str, float], step: int | None = None, model_id: str | None = None
) -> None:
    """Log metrics to the active run (and to the LoggedModel `model_id` when given)."""
    import mlflow

    mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step, model_id=model_id)


def log_training_data(
    settings: Settings,
    frame: pd.DataFrame,
    source: Path | None,
    name: str | None = None,
    context: str = "training",
) -> str | None:
    """Record `frame` as a dataset input of the active run (`mlflow.log_input`).

    Args:
        settings: the project (where `dvc.lock` is).
        frame: the rows the model saw (schema and profile are taken from it).
        source: the file or directory they were read from; its DVC md5 is the dataset's digest
            (`dataset_digest`; the run's `dataset_digest` tag says where it came from). Without
            a source MLflow hashes the frame itself.
        name: dataset name shown in the run's inputs (default: the source's file name).
        context: `training` or `evaluation`.

    Returns:
        The digest logged.
    """
    import mlflow

    digest, how = dataset_digest(settings, source) if source else (None, "no data file")
    dataset = mlflow.data.from_pandas(
        frame,
        source=str(source) if source else None,
        name=name or (Path(source).name if source else "frame"),
        digest=digest,
    )
    mlflow.log_input(dataset, context=context)
    set_tags({"dataset_digest": how})
    return dataset.digest


def set_tags(tags: Mapping[str, Any]) -> None:
    import mlflow

    mlflow.set_tags({k: str(v) for k, v in tags.items()})


def log_files(paths: list[Path], artifact_path: str | None = None) -> None:
    import mlflow

    for p in paths:
        mlflow.log_artifact(str(p), artifact_path=artifact_path)


def log_dict(data: Any, name: str) -> None:
    import mlflow

    mlflow.log_dict(data, name)


def epoch_logger(prefix: str = "epoch_"):
    """A Keras callback logging every epoch's metrics to the active run as `epoch_loss`,
    `epoch_auc`, `epoch_val_auc`, ... (step = epoch), so the learning curves never share a key
    with the run's holdout metrics (`auc`, `brier`, ...) that the UI and `search_runs` rank by."""
    import keras

    class EpochLogger(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            if logs:
                log_metrics({f"{prefix}{k}": v for k, v in logs.items()}, step=epoch + 1)

    return EpochLogger()


def log_scorer_model(
    export_dir: Path,
    sample: pd.DataFrame,
    predictions: Any,
    model_name: str,
    metrics: Mapping[str, float] | None = None,
) -> str:
    """Log an exported scorer directory as the run's self-contained pyfunc; returns the model URI.

    MLflow 3 convention: the model is logged first and `metrics` after it, tied to its
    `model_id`, so the LoggedModel page shows them (they are the run's metrics as well). The
    directory is stored under the model's `artifacts/scorer`. The pyfunc is logged from
    code with the inference packages and pinned requirements (`training.model_package`), so
    `mlflow.pyfunc.load_model` works in a fresh environment; `inference.registry.load_scorer`
    loads the directory directly for the compiled path.
    """
    import mlflow

    from inference.pyfunc import MODEL_NAME_KEY
    from training import model_package

    # MLflow would also copy this project's uv.lock, whose environment is the whole platform (and
    # the project itself): the model's own requirements.txt is what a fresh environment needs
    with tempfile.TemporaryDirectory() as tmp, patch.dict(os.environ, MLFLOW_LOG_UV_FILES="false"):
        # MLflow stores a directory artifact under its own name: stage it as `scorer` so the
        # registry's `artifacts/scorer` tag holds whatever the export folder was called
        staged = Path(export_dir)
        if staged.name != "scorer":
            staged = Path(tmp) / "scorer"
            shutil.copytree(export_dir, staged)
        info = mlflow.pyfunc.log_model(
            name=MODEL_ARTIFACT,
            python_model=str(model_package.entry_point()),
            code_paths=model_package.stage_code(Path(tmp) / "code"),
            model_config={MODEL_NAME_KEY: model_name},
            artifacts={"scorer": str(staged)},
            signature=model_package.signature(sample, predictions),
            input_example=sample,
            pip_requirements=model_package.requirements(model_name),
        )
    if metrics:
        log_metrics(metrics, model_id=info.model_id)
    return info.model_uri


def log_sklearn_model(
    model: Any, name: str, sample: pd.DataFrame, metrics: Mapping[str, float] | None = None
) -> str:
    """Log a fitted scikit-learn model beside the run's main model; returns its URI.

    Requirements are pinned here (no import sniffing in a subprocess); `metrics` are tied to
    the new LoggedModel as in `log_scorer_model`.
    """
    from importlib.metadata import version

    import mlflow
    import sklearn
    from mlflow.models import infer_signature

    requirements = [f"scikit-learn=={sklearn.__version__}", f"pandas=={pd.__version__}"]
    with patch.dict(os.environ, MLFLOW_LOG_UV_FILES="false"):
        info = mlflow.sklearn.log_model(
            model,
            name=name,
            serialization_format="skops",  # not pickle: loading it runs no stored code
            skops_trusted_types=["numpy.dtype"],
            pyfunc_predict_fn="predict_proba",
            signature=infer_signature(sample, model.predict_proba(sample)),
            pip_requirements=[*requirements, f"skops=={version('skops')}"],
        )
    if metrics:
        log_metrics(metrics, model_id=info.model_id)
    return info.model_uri


# --- registry primitives (policy lives in training/registry.py) ---------------------------------


def register_version(settings: Settings, model_uri: str, name: str, tags: Mapping[str, Any]) -> str:
    """Register `model_uri` as a new version of `name`; returns the version number."""
    import mlflow

    configure(settings)
    mv = mlflow.register_model(model_uri, name)
    c = client(settings)
    version_tags = {ARTIFACT_TAG: SCORER_DIR, **tags}
    for k, v in version_tags.items():
        c.set_model_version_tag(name, mv.version, k, str(v))
    return str(mv.version)


def set_alias(settings: Settings, name: str, alias: str, version: str) -> None:
    client(settings).set_registered_model_alias(name, alias, str(version))


def set_version_tags(settings: Settings, name: str, version: str, tags: Mapping[str, Any]) -> None:
    c = client(settings)
    for k, v in tags.items():
        c.set_model_version_tag(name, str(version), k, str(v)[:5000])


def model_tags(settings: Settings, name: str) -> dict[str, str]:
    """Tags of the registered model (empty when it does not exist)."""
    from mlflow.exceptions import MlflowException

    try:
        return dict(client(settings).get_registered_model(name).tags)
    except MlflowException:
        return {}


def set_model_tag(settings: Settings, name: str, key: str, value: str) -> None:
    client(settings).set_registered_model_tag(name, key, value)


TAG_LIMIT = 7_500  # MLflow refuses run tag values past 8,000 characters
OVERFLOW_SUFFIX = ".txt"


def append_record(
    settings: Settings,
    experiment: str,
    tags: Mapping[str, str],
    metrics: Mapping[str, float],
    run_name: str,
) -> str:
    """Append one record to an append-only log: a new, finished run in `experiment`.

    Every record is its own run, so two writers never touch the same row and nothing caps
    the log's length. A tag value too long for MLflow is stored whole as the artifact
    `<key>.txt` (the tag keeps its head and names the artifact). Returns the run id.
    """
    import time

    from mlflow.entities import Metric, RunTag

    c = client(settings)
    now_ns = time.time_ns()
    run = c.create_run(
        experiment_id(settings, experiment), start_time=now_ns // 1_000_000, run_name=run_name
    )
    run_id = run.info.run_id
    overflow = {k: v for k, v in tags.items() if len(v) > TAG_LIMIT}
    for key, value in overflow.items():
        c.log_text(run_id, value, f"{key}{OVERFLOW_SUFFIX}")
    all_tags = {k: v[:TAG_LIMIT] for k, v in tags.items()}
    all_tags |= {f"{k}.artifact": f"{k}{OVERFLOW_SUFFIX}" for k in overflow}
    all_tags["paycycle.seq"] = str(now_ns)
    stamp = now_ns // 1_000_000
    c.log_batch(
        run_id,
        metrics=[Metric(k, float(v), stamp, 0) for k, v in metrics.items()],
        tags=[RunTag(k, v) for k, v in all_tags.items()],
        synchronous=True,
    )
    c.set_terminated(run_id, "FINISHED")
    return run_id


def read_records(
    settings: Settings, experiment: str, match: Mapping[str, str]
) -> list[tuple[dict[str, str], dict[str, float]]]:
    """Records of `append_record` whose tags equal `match`, oldest first, as (tags, metrics).

    Tags that overflowed into artifacts come back whole. An experiment that does not exist yet
    holds no records.
    """
    c = client(settings)
    found = c.get_experiment_by_name(experiment)
    if found is None:
        return []
    where = " and ".join(f"tags.`{k}` = '{_quote(v)}'" for k, v in match.items())
    runs, token = [], None
    while True:
        page = c.search_runs(
            [found.experiment_id],
            where,
            max_results=1000,
            page_token=token,
            order_by=["attributes.start_time ASC"],
        )
        runs.extend(page)
        token = page.token
        if not token:
            break
    runs.sort(key=lambda r: (int(r.data.tags.get("paycycle.seq", 0)), r.info.start_time))
    out = []
    for run in runs:
        tags = dict(run.data.tags)
        for key in [k for k in tags if k.endswith(".artifact")]:
            name = key.removesuffix(".artifact")
            tags[name] = _read_text(c, run.info.run_id, tags.pop(key))
        out.append((tags, dict(run.data.metrics)))
    return out


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _read_text(c: Any, run_id: str, artifact: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        return Path(c.download_artifacts(run_id, artifact, tmp)).read_text()


def search_runs(settings: Settings, experiment: str = CHURN_EXPERIMENT) -> pd.DataFrame:
    """All runs of an experiment as a frame (params, metrics, tags), newest first."""
    import mlflow

    configure(settings)
    return mlflow.search_runs(experiment_names=[experiment], order_by=["start_time DESC"])


def log_report(run_id: str, settings: Settings, lines: list[str], name: str = "report.txt") -> None:
    """Attach a text report to a finished run."""
    client(settings).log_text(run_id, "\n".join(lines) + "\n", name)


def write_metrics_file(path: Path, metrics: Mapping[str, Any], **extra: Any) -> Path:
    """Write a run's metrics as the JSON that `dvc metrics show/diff` reads."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {**extra, **{k: float(v) for k, v in metrics.items()}}
    path.write_text(json.dumps(body, indent=2, sort_keys=True) + "\n")
    return path

"""Registered models: their names, aliases, and how a version becomes a scorer.

The one definition of the registered model names (`CHURN_MODEL`, `RECOMMENDER_MODEL`,
`OFFERS_MODEL`) and aliases (`CHAMPION`, `CHALLENGER`). `load_scorer(name, alias)` resolves the
alias to a version, downloads its files and hands the scorer directory to the loader that
`LOADERS` names for that model. The loader is chosen by the model's *name* from this allow-list,
never by a module path read from the registry, so a registry cannot make us import code.

Versions registered by the old layout carry a `paycycle.loader` tag (`training.churn:load_scorer`,
...): the tag is ignored; their scorer directory has the same format and loads by name. The
MLflow client and URI handling live here too, so training and inference read the registry the
same way (`training/tracking.py` writes runs and versions through `client`).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from paycycle.errors import ConfigError, RegistryUnavailable

if TYPE_CHECKING:  # the pyfunc imports this module in a bare environment: no settings stack
    from paycycle.config import Settings

CHURN_MODEL = "paycycle-churn"
RECOMMENDER_MODEL = "paycycle-recommender"
OFFERS_MODEL = "paycycle-offers"
MODELS = (CHURN_MODEL, RECOMMENDER_MODEL, OFFERS_MODEL)
CHAMPION = "champion"
CHALLENGER = "challenger"
ARTIFACT_TAG = "paycycle.artifact"  # path of the scorer dir inside the model version's artifacts
SCORER_DIR = "artifacts/scorer"
# MLflow's own defaults (120 s per request, 7 retries with backoff 2) make an unreachable server
# cost minutes; ours fail within ~30 s. A value the user set in the environment is kept.
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",  # seconds per request
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",  # retries on connection errors and 429/5xx
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",  # seconds, doubled per retry (plus jitter <= 1 s)
}
_ABSENT_CODES = ("RESOURCE_DOES_NOT_EXIST",)

Scorer = Callable[[Any], np.ndarray]


def _load_churn(path: Path) -> Any:
    from inference.churn import load_scorer as load

    return load(path)


def _load_recommender(path: Path) -> Any:
    from inference.recommender import load_recommender

    return load_recommender(path)


def _load_offers(path: Path) -> Any:
    from inference.offer_artifact import load_offer_policy

    return load_offer_policy(path)


# Registered model name -> loader of its exported scorer directory (the allow-list).
LOADERS: dict[str, Callable[[Path], Any]] = {
    CHURN_MODEL: _load_churn,
    RECOMMENDER_MODEL: _load_recommender,
    OFFERS_MODEL: _load_offers,
}


def loader_for(name: str) -> Callable[[Path], Any]:
    """The loader for registered model `name`.

    Raises:
        ConfigError: `name` is not one of ours.
    """
    try:
        return LOADERS[name]
    except KeyError:
        raise ConfigError(
            f"model: {name!r} is not a PayCycle model; choose one of {', '.join(MODELS)}"
        ) from None


def configure(settings: Settings) -> str:
    """Point MLflow (tracking and registry) at the settings' URI; returns it."""
    import mlflow

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for key, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)
    uri = settings.tracking_uri
    # MLflow 3 also writes these URIs into os.environ, where the next `config.load()` in this
    # process would take them as configuration (a project's registry leaking into another's):
    # keep the environment as it was; subprocesses get the URI passed explicitly.
    from paycycle.config import mlflow_env_kept  # not at import: the pyfunc has no settings stack

    with mlflow_env_kept():
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
    return uri


def client(settings: Settings):
    """An `MlflowClient` on the settings' tracking/registry URI."""
    from mlflow import MlflowClient

    configure(settings)
    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)


def redact_uri(text: str) -> str:
    """`text` with the password of every `scheme://user:password@host` replaced by `***`."""
    return re.sub(r"(://[^/\s:@]*):[^/\s@]*@", r"\1:***@", text)


def is_absent(exc: BaseException) -> bool:
    """True when the registry *answered* that the model, version or alias does not exist.

    MLflow says so with `RESOURCE_DOES_NOT_EXIST`, or (a missing alias on a SQL store)
    `INVALID_PARAMETER_VALUE` with "not found"; every other error (connection refused, timeout,
    5xx, an unreadable store) means the registry could not be read.
    """
    code = str(getattr(exc, "error_code", ""))
    if code in _ABSENT_CODES:
        return True
    return code == "INVALID_PARAMETER_VALUE" and "not found" in str(exc).lower()


def unavailable(settings: Settings, exc: BaseException) -> RegistryUnavailable:
    """The one-line error for a registry that cannot be read (credentials in URIs redacted)."""
    cause = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    if "Caused by " in cause:  # requests/urllib3 wrap the root cause in a long retry message
        cause = cause.rsplit("Caused by ", 1)[1].rstrip(")")
    return RegistryUnavailable(
        f"MLflow registry at {redact_uri(settings.tracking_uri)} cannot be read "
        f"({exc.__class__.__name__}: {redact_uri(cause)[:300]}); retry when it is back "
        "(MLFLOW_HTTP_REQUEST_TIMEOUT / _MAX_RETRIES bound how long each call waits)"
    )


@contextmanager
def registry_read(settings: Settings, what: str) -> Iterator[None]:
    """MLflow failing to answer (down, 5xx, timing out) inside the block raises
    `RegistryUnavailable` prefixed with `what`; the registry saying "no such thing" does not."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except RegistryUnavailable as exc:
        raise RegistryUnavailable(f"{what}: {exc}") from exc
    except (MlflowException, OSError) as exc:
        if is_absent(exc):
            raise
        raise RegistryUnavailable(f"{what}: {unavailable(settings, exc)}") from exc


def alias_version(settings: Settings, name: str, alias: str) -> str | None:
    """The version `alias` points at, or None when the registry says the alias (or the model)
    does not exist.

    Raises:
        RegistryUnavailable: the registry could not be read; "absent" is not known then.
    """
    from mlflow.exceptions import MlflowException

    try:
        return str(client(settings).get_model_version_by_alias(name, alias).version)
    except (MlflowException, OSError) as exc:
        if is_absent(exc):
            return None
        raise unavailable(settings, exc) from exc


def version_tags(settings: Settings, name: str, version: str) -> dict[str, str]:
    """A version's tags.

    Raises:
        RegistryUnavailable: the registry could not be read.
    """
    from mlflow.exceptions import MlflowException

    try:
        return dict(client(settings).get_model_version(name, str(version)).tags)
    except (MlflowException, OSError) as exc:
        if is_absent(exc):
            raise
        raise unavailable(settings, exc) from exc


def download_version(settings: Settings, name: str, version: str) -> Path:
    """Download a model version's files to a fresh temporary directory.

    Raises:
        RegistryUnavailable: the registry or its artifact store could not be read.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    configure(settings)
    dst = Path(tempfile.mkdtemp(prefix=f"{name}-v{version}-"))
    try:
        return Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{name}/{version}", dst_path=str(dst)
            )
        )
    except MlflowException as exc:
        shutil.rmtree(dst, ignore_errors=True)
        if is_absent(exc):
            raise
        raise unavailable(settings, exc) from exc


def load_scorer(
    name: str, alias: str = CHAMPION, settings: Settings | None = None, version: str | None = None
) -> tuple[Scorer, str]:
    """Load `name@alias` (or an explicit `version`) as a compiled batch scorer.

    This is what the service, batch scoring, promotion and the CLI call.

    Returns:
        (scorer, version): `scorer(data) -> np.ndarray`; `data` a DataFrame or column mapping.

    Raises:
        ConfigError: `name` is not ours, or the alias is not set (e.g. no champion promoted yet).
    """
    load = loader_for(name)
    if settings is None:
        from paycycle import config

        settings = config.load()
    version = version or alias_version(settings, name, alias)
    if version is None:
        raise ConfigError(
            f"{name}@{alias}: no such registered model alias in {settings.tracking_uri}"
        )
    tags = version_tags(settings, name, version)
    local = download_version(settings, name, version)
    try:
        return load(local / tags.get(ARTIFACT_TAG, SCORER_DIR)), version
    finally:  # the model is in memory now
        shutil.rmtree(local, ignore_errors=True)

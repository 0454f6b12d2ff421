"""One typed, frozen settings object.

`params.yaml` holds what DVC tracks (sizes, seeds, model and tuning params); environment variables
(`PAYCYCLE_*`, `MLFLOW_TRACKING_URI`, `PREFECT_API_URL`) hold URLs and secrets. Nothing here runs at
import time: call `load()` from an entry point and pass the result in.

Each area owns one section model below; add a field there (with a default) and a key in
`params.yaml` when a stage needs a new parameter.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Iterable, Iterator
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from paycycle.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = (
    "baseline",
    "price_shock",
    "usage_drop",
    "payment_outage",
    "segment_mix",
    "concept_shift",
)
Scenario = Literal[
    "baseline", "price_shock", "usage_drop", "payment_outage", "segment_mix", "concept_shift"
]
# scenarios that move observable inputs (data drift can see them); concept_shift moves only P(y|x)
COVARIATE_SCENARIOS = ("price_shock", "usage_drop", "payment_outage", "segment_mix")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataParams(Section):
    customers: int = Field(20_000, gt=0)
    months: int = Field(12, ge=2, le=120)
    seed: int = Field(7, ge=0)
    start_date: dt.date = dt.date(2025, 1, 1)
    scenario: Scenario = "baseline"
    chunk_customers: int = Field(250_000, gt=0)
    raw_dir: Path = Path("data/raw")
    truth_dir: Path = Path("data/truth")


class FeatureParams(Section):
    snapshots: int = Field(6, ge=1, le=60)
    horizon_days: int = Field(30, gt=0)
    path: Path = Path("data/features/features.parquet")


class ServingParams(Section):
    host: str = "127.0.0.1"
    port: int = Field(3000, gt=0, lt=65536)
    max_body_bytes: int = Field(2_000_000, gt=0)
    risk_bands: tuple[float, float] = (0.1, 0.3)  # low below the first, high from the second
    tf_threads: int = Field(1, ge=1)
    # `POST /admin/reload` loads in the background; a load still running after this many
    # seconds is marked failed (the old models keep serving)
    reload_timeout_s: float = Field(120.0, gt=0)


class ChurnParams(Section):
    """Churn MLP (`training/churn/model.py`); Optuna searches around these."""

    hidden_units: tuple[int, ...] = (64, 32)
    dropout: float = Field(0.3, ge=0, lt=1)
    l2: float = Field(1e-5, ge=0)
    learning_rate: float = Field(1e-3, gt=0)
    batch_size: int = Field(512, gt=0)
    epochs: int = Field(40, gt=0)
    patience: int = Field(5, ge=1)
    # positives are re-weighted by (neg/pos)**imbalance_power; the output bias is shifted back
    # by log(weight) after training, so probabilities stay calibrated
    imbalance_power: float = Field(0.5, ge=0, le=1)
    embedding_dim: int = Field(0, ge=0)  # 0 = one-hot categoricals
    val_fraction: float = Field(0.15, gt=0, lt=0.5)
    seed: int = Field(42, ge=0)


class TuningParams(Section):
    """Optuna study (`training/churn/tune.py`)."""

    study: str = "paycycle-churn"
    trials: int = Field(12, gt=0)
    epochs: int = Field(8, gt=0)
    startup_trials: int = Field(4, ge=0)  # random trials before TPE (and before median pruning)
    warmup_epochs: int = Field(2, ge=0)  # epochs every trial runs before it may be pruned
    # median: below the median of earlier trials at the same epoch; asha: successive halving,
    # rungs at (warmup_epochs or 1) x reduction_factor^k epochs, keeps the top 1/reduction_factor;
    # hyperband: several successive-halving brackets from (warmup_epochs or 1) to `epochs`
    pruner: Literal["median", "asha", "hyperband"] = "asha"
    reduction_factor: int = Field(3, ge=2)
    heartbeat_interval: int = Field(5, gt=0)
    grace_period: int = Field(20, gt=0)
    max_retry: int = Field(2, ge=0)
    seed: int = Field(13, ge=0)


class PromotionParams(Section):
    """Champion/challenger rule (`training/registry.py`): absolute floors, then a margin."""

    metric: str = "auc"
    margin: float = Field(0.002, ge=0)
    min_auc: float = Field(0.70, ge=0, le=1)
    max_brier: float = Field(0.08, gt=0)
    max_ece: float = Field(0.03, gt=0)
    # refuse a candidate whose `metric` does not beat the logistic-regression baseline fitted on
    # the same split; when false the decision only records whether it does
    require_beat_baseline: bool = False


NOTICE_KINDS = (
    "upcoming_charge",
    "renewal",
    "payment_failed",
    "subscription_at_risk",
    "plan_recommendation",
    "retention_offer",
    "card_expiring",
    "trial_ending",
    "scheduled_cancellation",
)


class LlmParams(Section):
    """Personalised notice text (`notify/llm.py`, `notify/personalise.py`). The endpoint, model
    and key come from the environment (`PAYCYCLE_LLM_URL`, `PAYCYCLE_LLM_MODEL`,
    `PAYCYCLE_LLM_API_KEY`); unset ⇒ templates only."""

    timeout_seconds: float = Field(10.0, gt=0, le=300)  # per notice, retries included
    max_concurrency: int = Field(4, ge=1, le=256)  # calls in flight at once
    max_calls_per_run: int = Field(500, ge=0)  # beyond this, notices keep their template text
    run_timeout_seconds: float = Field(120.0, gt=0)  # whole generation step of one delivery run
    retries: int = Field(2, ge=0, le=10)  # on 429, 5xx and connection errors
    backoff_seconds: float = Field(0.5, ge=0)  # first retry delay; doubles; Retry-After wins
    temperature: float = Field(0.3, ge=0, le=2)
    max_tokens: int = Field(400, ge=16)
    max_chars: int = Field(1200, ge=100)  # guard: longest accepted body
    min_length_ratio: float = Field(0.5, gt=0, le=1)  # guard: vs the template body's length
    max_length_ratio: float = Field(2.0, ge=1)
    prompt_alias: str = Field("production", pattern=r"^[A-Za-z0-9_-]+$")
    prompt_prefix: str = Field("paycycle-notice", pattern=r"^[A-Za-z0-9_.-]+$")
    experiment: str = "paycycle-notices-genai"
    kinds: dict[str, bool] = Field(default_factory=lambda: dict.fromkeys(NOTICE_KINDS, True))

    @field_validator("kinds")
    @classmethod
    def _known_kinds(cls, value: dict[str, bool]) -> dict[str, bool]:
        unknown = sorted(set(value) - set(NOTICE_KINDS))
        if unknown:
            raise ValueError(f"unknown notice kind(s) {unknown}; known: {list(NOTICE_KINDS)}")
        return value


class NotifyParams(Section):
    """Billing monitor (`notify/`): which notices, when, and how delivery retries."""

    upcoming_days: int = Field(3, ge=1, le=28)  # upcoming_charge this many days before a charge
    renewal_days: tuple[int, ...] = (30, 7)  # annual renewals: one notice per lead time
    retry_days: tuple[int, ...] = (1, 3, 7)  # the processor's retries after a failed charge
    channel: Literal["file", "smtp", "webhook"] = "file"
    outbox_dir: Path = Path("data/outbox")
    offer_policy_path: Path = Path("data/scores/offer_policy.parquet")
    batch_size: int = Field(200, gt=0)
    max_attempts: int = Field(5, ge=1)
    backoff_seconds: float = Field(60.0, gt=0)  # first retry delay; doubles per attempt
    backoff_max_seconds: float = Field(6 * 3600.0, gt=0)
    lease_seconds: float = Field(300.0, gt=0)  # a 'sending' row older than this is reclaimed
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(587, gt=0, lt=65536)
    # starttls | ssl (SMTPS) | none (local relay only: login is refused without TLS)
    smtp_tls: Literal["starttls", "ssl", "none"] = "starttls"
    smtp_ca_file: Path | None = None  # extra CA bundle to trust (default: the system store)
    sender: str = "billing@paycycle.example"
    webhook_url: str = "http://127.0.0.1:8025/notices"
    webhook_timeout_seconds: float = Field(10.0, gt=0)
    llm: LlmParams = LlmParams()


class RecommendParams(Section):
    """Next-best plan/add-on model (`training/recommender/`, `inference/recommender.py`)."""

    hidden_units: tuple[int, ...] = (64, 32)
    dropout: float = Field(0.1, ge=0, lt=1)
    learning_rate: float = Field(2e-3, gt=0)
    batch_size: int = Field(256, gt=0)
    epochs: int = Field(60, gt=0)
    patience: int = Field(6, ge=1)
    val_fraction: float = Field(0.15, gt=0, lt=0.5)
    seed: int = Field(42, ge=0)
    window_days: int = Field(60, ge=28, le=120)  # held-out adoptions: [as_of, as_of + window)
    k: int = Field(3, ge=1, le=9)
    # plan moves that make sense: usage (last month or 3-month mean) ÷ included units
    upgrade_min_usage: float = Field(0.8, gt=0)
    downgrade_max_usage: float = Field(0.5, gt=0)
    min_oracle_ratio: float = Field(0.85, ge=0, le=1)  # promotion floor on recall@k ÷ oracle
    margin: float = Field(0.005, ge=0)  # challenger must beat the champion's recall@k by this


class OfferParams(Section):
    """Retention offer policy (`inference/offers.py`, fitted in `training/offers/`)."""

    budget: float = Field(10_000.0, ge=0)  # USD of offer cost per month
    horizon_months: int = Field(12, ge=1, le=60)  # CLV horizon
    effect_months: int = Field(3, ge=1, le=12)  # how long an accepted offer lowers the hazard
    accept_c: float = Field(0.3, gt=0)  # inverse L2 strength of the P(accept) logistic fits
    seed: int = Field(5, ge=0)
    output_dir: Path = Path("reports/offers")


class ScoringParams(Section):
    """Batch scoring (`inference/batch.py`, `flows/score.py`) on one process or a Dask cluster."""

    out_dir: Path = Path("data/scores")  # partitions land in <out_dir>/as_of=DATE/
    batch_rows: int = Field(65_536, gt=0)  # rows per compiled model call
    top_k: int = Field(3, ge=1, le=9)  # recommendations kept per customer
    workers: int = Field(0, ge=0)  # LocalCluster workers; 0 = one per core
    threads_per_worker: int = Field(1, ge=1)
    memory_limit: str = "4GiB"  # per LocalCluster worker (docker-compose workers use the same)
    tf_threads: int = Field(1, ge=1)  # TF intra/inter-op threads per worker process
    task_retries: int = Field(2, ge=0)  # Prefect retries per partition (writes are idempotent)


class DunningParams(Section):
    """Decline-aware dunning (`retention/dunning.py`): caps and the end action."""

    max_retries: int = Field(4, ge=0, le=20)  # retries of a soft decline after the failed charge
    max_days: int = Field(30, ge=1, le=60)  # no retry later than this many days after it
    min_gap_days: int = Field(2, ge=1)  # between two retries
    end_action: Literal["pause", "cancel"] = "pause"  # when dunning ends unpaid


class RetentionParams(Section):
    """Retention notices (`notify/cycles.py`), signed links, cancel-intent offers and saves,
    uplift (`retention/`), holdout and frequency caps."""

    card_expiring_days: int = Field(5, ge=1, le=60)  # notice this many days before expiry
    trial_ending_days: int = Field(3, ge=1, le=30)
    cancellation_days: int = Field(7, ge=1, le=60)  # scheduled_cancellation lead time
    link_base_url: str = "https://billing.paycycle.example"
    link_ttl_hours: float = Field(72.0, gt=0)
    holdout_share: float = Field(0.10, ge=0, lt=1)  # no offers / recommendation notices
    holdout_salt: str = "paycycle-holdout-v1"
    offer_cap_days: int = Field(60, ge=0)  # at most one offer per customer per this many days
    save_days: int = Field(30, ge=1)  # a save counts if still active this long after the visit
    uplift_window_months: int = Field(3, ge=1, le=12)
    uplift_confidence: float = Field(0.95, gt=0.5, lt=1)
    reports_dir: Path = Path("reports/uplift")


class StoreParams(Section):
    """The subscription store (`paycycle/loader.py`)."""

    # PostgreSQL lock_timeout of `paycycle load`: a load facing a conflicting lock fails after
    # this long instead of queueing in front of the API's readers and writers
    lock_timeout_ms: int = Field(5_000, ge=1)


class DriftParams(Section):
    """Drift decision thresholds (rule in `monitoring/decision.py`, tuned by
    `benchmarks/tune_drift.py` on seeds the benchmark does not report) and the monitor loop."""

    wasserstein_threshold: float = Field(0.06, gt=0)  # normed W1, continuous numerics
    psi_threshold: float = Field(0.005, gt=0)  # PSI, categoricals and counts/flags
    alpha: float = Field(0.01, gt=0, lt=1)  # per-feature significance
    share_threshold: float = Field(0.04, gt=0, le=1)  # importance-weighted share of drifted
    importance_mix: float = Field(0.5, ge=0, le=1)  # 0 = uniform weights, 1 = importance only
    prediction_psi_threshold: float = Field(0.1, gt=0)
    auc_drop: float = Field(0.03, gt=0)
    calibration_rise: float = Field(0.03, gt=0)
    # realized-performance rule (monitoring.decision.performance_drop), benchmarks/tune_performance
    performance_auc_drop: float = Field(0.05, gt=0)
    performance_brier_rise: float = Field(0.01, gt=0)
    bins: int = Field(10, ge=2, le=100)
    feature_thresholds: dict[str, float] = Field(default_factory=dict)  # per-feature overrides
    report_sample_rows: int = Field(50_000, ge=1_000)  # stratified sample for the HTML report
    cooldown_days: int = Field(7, ge=0)  # minimum days between drift-triggered retrains
    reports_dir: Path = Path("reports")
    requests_dir: Path = Path("data/requests")
    log_requests: bool = True  # the service logs /churn inputs + predictions for the monitor
    log_flush_rows: int = Field(10_000, ge=1)  # one Parquet file per this many logged customers
    # rows the service keeps in memory while flushes fail (disk full, unwritable folder); past
    # it the oldest are dropped and counted (paycycle_request_log_dropped_rows_total)
    request_log_max_rows: int = Field(100_000, ge=1)
    request_log_retention_days: int = Field(90, ge=1)  # date=YYYY-MM-DD folders kept this long
    reload_timeout_s: float = Field(30.0, gt=0)

    @field_validator("request_log_max_rows")
    @classmethod
    def _bound_holds_a_flush(cls, value: int, info: ValidationInfo) -> int:
        flush = info.data.get("log_flush_rows")
        if flush is not None and value < flush:
            raise ValueError(
                f"must be >= drift.log_flush_rows ({flush}), or nothing is ever written"
            )
        return value


class RolloutStage(Section):
    """One rollout stage: the share of customers the challenger answers, and how long it bakes."""

    name: str
    percent: float = Field(ge=0, le=100)  # 0 = shadow: the challenger scores, never answers
    bake_s: float = Field(gt=0)


class RolloutParams(Section):
    """Safe rollout of a challenger (`inference/rollout.py` rules, `serving/rollout.py` routing,
    `training/rollout.py` driver): stages in order, then the live guards that roll it back."""

    stages: tuple[RolloutStage, ...] = (
        RolloutStage(name="shadow", percent=0, bake_s=300),
        RolloutStage(name="canary-5", percent=5, bake_s=600),
        RolloutStage(name="canary-25", percent=25, bake_s=600),
        RolloutStage(name="full", percent=100, bake_s=600),
    )
    poll_s: float = Field(1.0, gt=0)  # how often the service reads the rollout and its guards
    window_s: float = Field(120.0, gt=0)  # guards read the challenger's last `window_s` seconds
    min_requests: int = Field(20, ge=1)  # challenger calls before error and latency guards judge
    min_scores: int = Field(100, ge=2)  # challenger scores before the shift guard judges
    max_error_rate: float = Field(0.02, ge=0, le=1)
    max_p99_ms: float = Field(500.0, gt=0)  # p99 of the challenger's model calls
    max_shift: float = Field(0.3, gt=0, le=1)  # Kolmogorov-Smirnov distance of the score sets

    @field_validator("stages")
    @classmethod
    def _some_stages(cls, value: tuple[RolloutStage, ...]) -> tuple[RolloutStage, ...]:
        if not value:
            raise ValueError("needs at least one stage")
        if value[-1].percent != 100:
            raise ValueError("the last stage must send 100 percent to the challenger")
        return value


class Params(Section):
    """Everything in `params.yaml`. Unknown top-level keys are allowed so that stages can
    keep their own sections before they get a typed model here."""

    model_config = ConfigDict(extra="allow", frozen=True)
    data: DataParams = DataParams()
    features: FeatureParams = FeatureParams()
    serving: ServingParams = ServingParams()
    churn: ChurnParams = ChurnParams()
    tuning: TuningParams = TuningParams()
    promotion: PromotionParams = PromotionParams()
    notify: NotifyParams = NotifyParams()
    recommend: RecommendParams = RecommendParams()
    offers: OfferParams = OfferParams()
    scoring: ScoringParams = ScoringParams()
    drift: DriftParams = DriftParams()
    dunning: DunningParams = DunningParams()
    retention: RetentionParams = RetentionParams()
    store: StoreParams = StoreParams()
    rollout: RolloutParams = RolloutParams()


class Settings(BaseSettings):
    """Environment-driven settings plus the parsed `params.yaml`."""

    model_config = SettingsConfigDict(env_prefix="PAYCYCLE_", frozen=True, extra="ignore")

    root: Path = PROJECT_ROOT
    params_path: Path = Path("params.yaml")
    database_url: str | None = None
    api_token: str | None = None
    link_secret: str | None = None  # PAYCYCLE_LINK_SECRET: HMAC key of self-serve links
    service_url: str | None = None  # running API for `POST /admin/reload` (monitor loop)
    dvc_remote: str | None = None
    dask_address: str | None = None
    mlflow_tracking_uri: str | None = Field(
        None, validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "PAYCYCLE_MLFLOW_TRACKING_URI")
    )
    prefect_api_url: str | None = Field(
        None, validation_alias=AliasChoices("PREFECT_API_URL", "PAYCYCLE_PREFECT_API_URL")
    )
    optuna_storage: str | None = None  # PAYCYCLE_OPTUNA_STORAGE, e.g. a PostgreSQL URL
    # an OpenAI-compatible server for personalised notice text (unset: templates only)
    llm_url: str | None = None  # PAYCYCLE_LLM_URL, e.g. http://127.0.0.1:11434/v1 (Ollama)
    llm_model: str | None = None  # PAYCYCLE_LLM_MODEL, e.g. llama3.2:3b
    llm_api_key: SecretStr | None = None  # PAYCYCLE_LLM_API_KEY (hosted APIs; never logged)
    params: Params = Params()

    @field_validator("llm_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        from urllib.parse import urlsplit

        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("expected an http(s) URL such as http://127.0.0.1:11434/v1")
        return value.strip().rstrip("/")

    @field_validator("llm_model")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value.strip() if value and value.strip() else None

    @property
    def llm_enabled(self) -> bool:
        """True when both `PAYCYCLE_LLM_URL` and `PAYCYCLE_LLM_MODEL` are set."""
        return bool(self.llm_url and self.llm_model)

    def path(self, relative: Path | str) -> Path:
        """Resolve a project-relative path against `root`."""
        p = Path(relative)
        return p if p.is_absolute() else self.root / p

    @property
    def db_url(self) -> str:
        """The subscription store URL: `PAYCYCLE_DATABASE_URL` or a SQLite file in the project."""
        return self.database_url or f"sqlite:///{self.path('data/paycycle.db')}"

    @property
    def tracking_uri(self) -> str:
        """MLflow tracking: the env URI or a SQLite backend in the project."""
        return self.mlflow_tracking_uri or f"sqlite:///{self.path('mlruns.db')}"

    @property
    def optuna_url(self) -> str:
        """Optuna storage: `PAYCYCLE_OPTUNA_STORAGE` or a SQLite file in the project."""
        return self.optuna_storage or f"sqlite:///{self.path('optuna.db')}"

    @cached_property
    def raw_dir(self) -> Path:
        return self.path(self.params.data.raw_dir)

    @cached_property
    def truth_dir(self) -> Path:
        return self.path(self.params.data.truth_dir)


ENV_FIELDS = ("llm_url", "llm_model", "llm_api_key")


def _describe(error: dict[str, Any]) -> str:
    where = ".".join(str(p) for p in error["loc"] if p != "params") or "params"
    return f"{where}: {error['msg']} (got {error.get('input')!r})"


def load(params_path: Path | str | None = None, **overrides: Any) -> Settings:
    """Read `params.yaml` and the environment into one frozen `Settings`.

    Args:
        params_path: YAML file; defaults to `$PAYCYCLE_PARAMS_PATH` or `<root>/params.yaml`.
        **overrides: top-level Settings fields to force (tests use `root=tmp_path`).

    Returns:
        The settings object every stage takes.

    Raises:
        ConfigError: one line naming the bad key, the expected type and the value found.
    """
    root = Path(overrides.get("root") or os.environ.get("PAYCYCLE_ROOT") or PROJECT_ROOT)
    path = Path(params_path or os.environ.get("PAYCYCLE_PARAMS_PATH") or root / "params.yaml")
    raw: dict[str, Any] = {}
    if path.exists():
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc.__class__.__name__})") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a mapping of sections, got {type(raw).__name__}")
    try:
        params = Params.model_validate(raw)
        return Settings(
            root=root,
            params_path=path,
            params=params,
            **{k: v for k, v in overrides.items() if k != "root"},
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        if field in ENV_FIELDS:  # an environment value: name the variable, never echo it
            raise ConfigError(f"PAYCYCLE_{field.upper()}: {first['msg']}") from None
        raise ConfigError(f"{path.name}: {_describe(first)}") from None


MLFLOW_URI_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


@contextlib.contextmanager
def env_kept(keys: Iterable[str]) -> Iterator[None]:
    """Restore these environment variables on exit, as they were on entry (set or unset)."""
    saved = {key: os.environ.get(key) for key in keys}
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def mlflow_env_kept() -> contextlib.AbstractContextManager[None]:
    """Keep MLflow's URI variables as they were: `mlflow.set_tracking_uri`/`set_registry_uri`
    write them into os.environ, where subprocesses and the next `load()` would take them as
    configuration (one project's registry leaking into another's)."""
    return env_kept(MLFLOW_URI_ENV)

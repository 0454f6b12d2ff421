"""The data pipeline as a Prefect 3 flow: simulate → version (DVC) → validate (GE) → features.

Tasks wrap the plain functions of `paycycle.sim.simulator`, `paycycle.versioning`,
`features.validation` and `features.table`; the flow only wires them. The DVC md5 of `data/raw`
flows downstream: validation and features are cached by it (a re-run on the same data skips
them), and it is returned so training runs can tag the data version they used.

When the run's data parameters equal `params.yaml`, its outputs are recorded in `dvc.lock`
(`dvc commit`), so a following `dvc repro` has nothing to do. A run with overrides
(`--customers N`) is hashed the same way but not recorded: `dvc.lock` must match `params.yaml`.

Run: `python -m flows.pipeline [--customers N]` or `paycycle pipeline`. Without
`PREFECT_API_URL` it runs on Prefect's ephemeral server with `PREFECT_HOME=<project>/.prefect`.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.context import TaskRunContext

from features import validation
from paycycle import config, versioning
from paycycle.config import Settings
from paycycle.errors import DataError
from paycycle.sim.simulator import SimSpec
from paycycle.sim.simulator import simulate as run_simulation

RAW_OUT = "data/raw"
VALIDATION_METRICS = Path("reports/validation/raw.json")
FEATURE_METRICS = Path("reports/validation/features.json")


def _source_hash(*modules: Any) -> str:
    """Hash of the given modules' source, so a code change invalidates cached results."""
    digest = hashlib.md5()
    for module in modules:
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()[:12]


def _cache_key(prefix: str, parameters: dict[str, Any], keys: tuple[str, ...]) -> str:
    """A key from the named task parameters (the data hash first) and the project root."""
    settings: Settings = parameters["settings"]
    parts = [str(parameters[k]) for k in keys] + [str(settings.root)]
    return f"{prefix}-" + hashlib.md5("|".join(parts).encode()).hexdigest()


def _validate_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    return _cache_key(f"validate-{_source_hash(validation)}", parameters, ("data_hash",))


def _features_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    import features.build
    import features.table

    code = _source_hash(features.build, features.table, validation)
    return _cache_key(f"features-{code}", parameters, ("data_hash", "as_of_dates"))


def _unless_missing(task_: Any, *outputs: Path) -> Any:
    """The task, set to refresh its cache when an output it wrote has since been deleted."""
    return task_.with_options(refresh_cache=not all(p.exists() for p in outputs))


def _not_data_error(task: Any, task_run: Any, state: Any) -> bool:
    """Retry transient failures only: bad data stays bad."""
    try:
        state.result()
    except DataError:
        return False
    except Exception:
        return True
    return False


@task(retries=1, retry_delay_seconds=2, cache_policy=NO_CACHE, log_prints=True)
def simulate_data(settings: Settings, spec: SimSpec) -> dict[str, int]:
    """Write the raw tables and the truth; returns rows per table."""
    summary = run_simulation(spec, settings.raw_dir, settings.truth_dir)
    print(f"simulated {spec.customers:,} customers × {spec.months} months → {settings.raw_dir}")
    return summary.rows


@task(retries=2, retry_delay_seconds=3, cache_policy=NO_CACHE, log_prints=True)
def version_data(settings: Settings, record: bool) -> str:
    """The DVC md5 of `data/raw`; with `record`, also commit the simulate stage to dvc.lock."""
    if record:
        versioning.commit(["simulate"], settings.root)
        data_hash = versioning.data_hash(RAW_OUT, settings.root)
    else:
        data_hash = versioning.content_hash(RAW_OUT, settings.root)
    print(f"data/raw md5 {data_hash} ({'recorded in dvc.lock' if record else 'not recorded'})")
    return data_hash


@task(
    retries=1,
    retry_delay_seconds=2,
    retry_condition_fn=_not_data_error,
    cache_key_fn=_validate_key,
    log_prints=True,
)
def validate_data(settings: Settings, data_hash: str) -> dict[str, Any]:
    """Run the raw-table suites; raises DataError (and stops the flow) when any fails."""
    result = validation.validate_raw(settings, settings.raw_dir)
    validation.write_metrics(result, settings.path(VALIDATION_METRICS))
    print(f"validation of {data_hash}: {result.summary()}")
    result.raise_for_failures()
    return {"evaluated": result.evaluated, "data_docs": str(result.docs_path)}


@task(
    retries=1,
    retry_delay_seconds=2,
    retry_condition_fn=_not_data_error,
    cache_key_fn=_features_key,
    log_prints=True,
)
def build_feature_table(
    settings: Settings, data_hash: str, as_of_dates: list[str]
) -> dict[str, Any]:
    """Build the feature table from validated raw data, then validate it."""
    from features.table import write_feature_table

    out = settings.path(settings.params.features.path)
    table = write_feature_table(settings.raw_dir, out, as_of_dates)
    result = validation.validate_features(settings, out)
    validation.write_metrics(result, settings.path(FEATURE_METRICS))
    print(f"features of {data_hash}: {len(table):,} rows → {out}; {result.summary()}")
    result.raise_for_failures()
    return {"rows": len(table), "path": str(out)}


@task(retries=2, retry_delay_seconds=3, cache_policy=NO_CACHE, log_prints=True)
def record_outputs(settings: Settings) -> str:
    """Commit the validate and features stages to dvc.lock; returns the features md5."""
    versioning.commit(["validate", "features"], settings.root)
    return versioning.data_hash(settings.params.features.path, settings.root)


@flow(name="data-pipeline", log_prints=True)
def pipeline(
    customers: int | None = None,
    months: int | None = None,
    seed: int | None = None,
    scenario: str | None = None,
    simulate: bool = True,
    root: str | None = None,
) -> dict[str, Any]:
    """Simulate, version, validate and build features; returns paths and DVC hashes.

    Args:
        customers, months, seed, scenario: override `params.yaml` (data section) for this run;
            a run with overrides is not recorded in dvc.lock.
        simulate: False validates and featurises the data already in data/raw (not recorded).
        root: the project directory (default: this project, or `$PAYCYCLE_ROOT`).

    Returns:
        `data_hash` (DVC md5 of data/raw), `features_hash` (None when not recorded), paths of
        the raw data, features and Data Docs, row counts, and whether dvc.lock was updated.
    """
    from features.table import snapshot_dates

    settings = config.load(root=root) if root else config.load()
    d, fp = settings.params.data, settings.params.features
    spec = SimSpec(
        customers=customers or d.customers,
        months=months or d.months,
        seed=d.seed if seed is None else seed,
        start_date=d.start_date,
        scenario=scenario or d.scenario,
        chunk_customers=d.chunk_customers,
    )
    record = simulate and (spec.customers, spec.months, spec.seed, spec.scenario) == (
        d.customers,
        d.months,
        d.seed,
        d.scenario,
    )
    dates = snapshot_dates(d.start_date, spec.months, fp.snapshots, fp.horizon_days)
    rows = simulate_data(settings, spec) if simulate else {}
    data_hash = version_data(settings, record)
    docs = settings.path(validation.DOCS_DIR) / "index.html"
    checked = _unless_missing(validate_data, settings.path(VALIDATION_METRICS), docs)(
        settings, data_hash
    )
    feats = _unless_missing(
        build_feature_table, settings.path(fp.path), settings.path(FEATURE_METRICS)
    )(settings, data_hash, dates)
    features_hash = record_outputs(settings) if record else None
    return {
        "data_hash": data_hash,
        "features_hash": features_hash,
        "recorded": record,
        "raw_dir": str(settings.raw_dir),
        "truth_dir": str(settings.truth_dir),
        "features_path": feats["path"],
        "feature_rows": feats["rows"],
        "data_docs": checked["data_docs"],
        "rows": rows,
    }


def prepare_prefect(settings: Settings) -> None:
    """Point Prefect at `<project>/.prefect` unless PREFECT_HOME is set; call before a run."""
    # the ephemeral server would otherwise phone home (and log an error when offline)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # the default 20 s is too short for a cold start on a busy two-core machine
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    if "PREFECT_HOME" not in os.environ:
        home = settings.path(".prefect")
        home.mkdir(parents=True, exist_ok=True)
        os.environ["PREFECT_HOME"] = str(home)
    from prefect.context import refresh_global_settings_context

    refresh_global_settings_context()  # prefect read its settings when it was imported


def run(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """Entry point for the CLI: set up Prefect for this project, run `pipeline`."""
    prepare_prefect(settings)
    return pipeline(root=str(settings.root), **overrides)


def print_result(result: dict[str, Any], console: Any) -> None:
    """Where the data, reports and hashes are."""
    console.print(f"raw data:   {result['raw_dir']}  (truth: {result['truth_dir']})")
    console.print(f"features:   {result['features_path']}  ({result['feature_rows']:,} rows)")
    console.print(f"data docs:  {result['data_docs']}")
    console.print(f"data hash:  {result['data_hash']}  (DVC md5 of data/raw)")
    if result["recorded"]:
        console.print(f"features hash: {result['features_hash']}  (recorded in dvc.lock)")
    else:
        console.print("dvc.lock:   not updated (run differs from params.yaml)")


def main(argv: list[str] | None = None) -> int:
    """`python -m flows.pipeline`: the options of `paycycle pipeline`, errors as one line (exit 2).

    Parses its own arguments so that flows never import the CLI.
    """
    import argparse
    import sys

    from rich.console import Console

    from paycycle.errors import PayCycleError

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, help="customers (params: data.customers)")
    parser.add_argument("--months", type=int, help="months (params: data.months)")
    parser.add_argument("--seed", type=int, help="seed (params: data.seed)")
    parser.add_argument("--scenario", help="scenario (params: data.scenario)")
    args = parser.parse_args(argv)
    try:
        settings = config.load()
        result = run(
            settings,
            customers=args.customers,
            months=args.months,
            seed=args.seed,
            scenario=args.scenario,
        )
    except PayCycleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print_result(result, Console())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

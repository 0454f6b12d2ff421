"""Data validation with Great Expectations 1.x: the one module that talks to GE.

Suites are written here in code (schema, types, ranges, nulls, key uniqueness, referential
integrity, date order) and run through GE checkpoints on a file context under
`reports/gx/`; Data Docs go to `reports/data_docs/`. Referential integrity and cross-table date
order are expressed as computed columns (e.g. `orphan_customer_id`: the id when it is missing
from `customers`, else null) so that GE reports how many rows break the rule and which ids.

The simulator's truth (`data/truth`) is never validated or read here.

Entry points: `validate_raw(settings, raw_dir)` and `validate_features(settings, path)` return a
`ValidationResult`; `ValidationResult.raise_for_failures()` turns a failed run into a `DataError`
whose message names each failed expectation, its row count and a few examples.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from paycycle import catalog
from paycycle.config import Settings
from paycycle.errors import DataError
from paycycle.tables import read_table

GX_DIR = Path("reports/gx")  # GE file context (suites, checkpoints, validation results)
DOCS_DIR = Path("reports/data_docs")  # Data Docs site
SITE_NAME = "paycycle"
DATASOURCE = "paycycle"
EXAMPLES = 5  # example values kept per failed expectation
RAW_TABLES = (*catalog.EVENT_TABLES, *catalog.CATALOG_TABLES)  # cards/trials: not validated yet
FEATURE_SUITE = "features"
LABEL = "churned"

# dtype names accepted for each column kind (the simulator writes ms timestamps; others are fine)
KINDS: dict[str, list[str]] = {
    "int": ["int64", "int32"],
    "float": ["float64", "float32"],
    "number": ["float64", "float32", "int64", "int32"],
    "date": ["datetime64[ms]", "datetime64[us]", "datetime64[ns]", "datetime64[s]"],
    "str": ["object", "string", "str"],
    "bool": ["bool", "boolean"],
}
COLUMNS: dict[str, dict[str, str]] = {
    "customers": {
        "customer_id": "int",
        "signup_date": "date",
        "country": "str",
        "currency": "str",
        "locale": "str",
        "email": "str",
        "acquisition_channel": "str",
        "segment": "str",
    },
    "subscriptions": {
        "subscription_id": "int",
        "customer_id": "int",
        "plan_id": "int",
        "cycle": "str",
        "start_date": "date",
        "billing_day": "int",
        "status": "str",
        "next_charge_at": "date",
        "renews_at": "date",
        "cancelled_at": "date",
        "addons": "str",
    },
    "invoices": {
        "invoice_id": "int",
        "customer_id": "int",
        "subscription_id": "int",
        "period_start": "date",
        "due_date": "date",
        "amount": "float",
        "currency": "str",
        "status": "str",
        "paid_at": "date",
        "attempts": "int",
    },
    "payments": {
        "payment_id": "int",
        "invoice_id": "int",
        "customer_id": "int",
        "attempt": "int",
        "attempted_at": "date",
        "amount": "float",
        "status": "str",
        "decline_code": "str",
    },
    "usage": {
        "customer_id": "int",
        "month": "date",
        "units": "int",
        "active_days": "int",
        "included_units": "int",
        "feat_storage_gb": "int",
        "support_tickets": "int",
        "feat_reports": "int",
        "feat_api_calls": "int",
        "feat_sms": "int",
    },
    "offers": {
        "offer_id": "int",
        "customer_id": "int",
        "offered_at": "date",
        "offer_type": "str",
        "cost": "float",
        "accepted": "bool",
    },
    "adoptions": {"customer_id": "int", "adopted_at": "date", "item": "str", "kind": "str"},
    "plans": {
        "plan_id": "int",
        "name": "str",
        "tier": "int",
        "monthly_price": "float",
        "included_units": "int",
        "annual_price": "float",
        "addons": "str",
    },
    "addons": {"addon_id": "int", "name": "str", "monthly_price": "float", "signal": "str"},
}
KEYS: dict[str, tuple[str, ...]] = {
    "customers": ("customer_id",),
    "subscriptions": ("subscription_id",),
    "invoices": ("invoice_id",),
    "payments": ("payment_id",),
    "usage": ("customer_id", "month"),
    "offers": ("offer_id",),
    "adoptions": ("customer_id", "adopted_at", "item"),
    "plans": ("plan_id",),
    "addons": ("addon_id",),
}
# (table, column) -> (parent table, parent key): each value must exist in the parent
REFERENCES: dict[tuple[str, str], tuple[str, str]] = {
    ("subscriptions", "customer_id"): ("customers", "customer_id"),
    ("subscriptions", "plan_id"): ("plans", "plan_id"),
    ("invoices", "subscription_id"): ("subscriptions", "subscription_id"),
    ("invoices", "customer_id"): ("customers", "customer_id"),
    ("payments", "invoice_id"): ("invoices", "invoice_id"),
    ("usage", "customer_id"): ("customers", "customer_id"),
    ("offers", "customer_id"): ("customers", "customer_id"),
    ("adoptions", "customer_id"): ("customers", "customer_id"),
}


@dataclass(frozen=True)
class Failure:
    """One failed expectation."""

    table: str
    expectation: str
    column: str | None
    unexpected: int | None  # rows breaking it (None for table-level checks)
    examples: list[Any] = field(default_factory=list)
    description: str = ""

    def __str__(self) -> str:
        where = f"{self.table}.{self.column}" if self.column else self.table
        shown = ", ".join(map(str, self.examples[:3]))
        if self.unexpected is None:  # table-level or type checks: no row count
            detail = shown or "failed"
        else:
            detail = f"{self.unexpected:,} rows" + (f", e.g. {shown}" if shown else "")
        return f"{where} {self.description} [{self.expectation}]: {detail}"


@dataclass
class ValidationResult:
    """What a validation run found, and where its Data Docs are."""

    success: bool
    failures: list[Failure]
    docs_path: Path
    rows: dict[str, int]  # rows validated per table
    expectations: dict[str, int]  # expectations evaluated per table
    seconds: float = 0.0

    @property
    def evaluated(self) -> int:
        return sum(self.expectations.values())

    def summary(self) -> str:
        """One line: counts, each failure, and the Data Docs page."""
        if self.success:
            return (
                f"{self.evaluated} expectations passed on {len(self.rows)} table(s); "
                f"Data Docs: {self.docs_path}"
            )
        listed = "; ".join(str(f) for f in self.failures)
        return (
            f"{len(self.failures)} of {self.evaluated} expectations failed: {listed}; "
            f"Data Docs: {self.docs_path}"
        )

    def raise_for_failures(self) -> ValidationResult:
        """Raise `DataError` with `summary()` when any expectation failed; else return self."""
        if not self.success:
            raise DataError(f"data validation failed: {self.summary()}")
        return self

    def to_metrics(self) -> dict[str, Any]:
        """A deterministic summary (no timings or absolute paths), fit for DVC metrics."""
        return {
            "success": self.success,
            "evaluated": self.evaluated,
            "expectations": dict(sorted(self.expectations.items())),
            "failed": len(self.failures),
            "rows": dict(sorted(self.rows.items())),
            "failures": [
                {k: v for k, v in asdict(f).items() if k != "examples"} for f in self.failures
            ],
        }


def write_metrics(result: ValidationResult, path: Path) -> Path:
    """Write `result.to_metrics()` as JSON (the validate stage's DVC metrics file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result.to_metrics(), indent=2, default=str) + "\n")
    return path


# --- suites -------------------------------------------------------------------------------


def _schema(gxe: Any, table: str) -> list[Any]:
    cols = COLUMNS[table]
    out: list[Any] = [
        gxe.ExpectTableColumnsToMatchSet(
            column_set=list(cols),
            exact_match=False,
            description="must have the contract columns",
        ),
        gxe.ExpectTableRowCountToBeBetween(min_value=1, description="must not be empty"),
    ]
    out += [
        gxe.ExpectColumnValuesToBeInTypeList(column=c, type_list=KINDS[k]) for c, k in cols.items()
    ]
    key = KEYS[table]
    out += [
        gxe.ExpectColumnValuesToNotBeNull(column=c, description="must not be null (an id)")
        for c in key
    ]
    if len(key) == 1:
        out.append(
            gxe.ExpectColumnValuesToBeUnique(column=key[0], description="must be unique (the key)")
        )
    else:
        out.append(
            gxe.ExpectCompoundColumnsToBeUnique(
                column_list=list(key), description="must be unique together (the key)"
            )
        )
    for (child, column), (parent, pkey) in REFERENCES.items():
        if child == table:
            out.append(
                gxe.ExpectColumnValuesToBeNull(
                    column=f"orphan_{column}",
                    description=f"must exist in {parent}.{pkey}",
                )
            )
    return out


def _between(gxe: Any, column: str, low: float | None, high: float | None, **kw: Any) -> Any:
    return gxe.ExpectColumnValuesToBeBetween(column=column, min_value=low, max_value=high, **kw)


def _after(gxe: Any, later: str, earlier: str, strict: bool = False) -> Any:
    return gxe.ExpectColumnPairValuesAToBeGreaterThanB(
        column_A=later,
        column_B=earlier,
        or_equal=not strict,
        ignore_row_if="either_value_is_missing",
        description=f"must be ordered: {later} {'>' if strict else '>='} {earlier}",
    )


def _when(gxe: Any, condition: str, column: str, what: str) -> Any:
    return gxe.ExpectColumnValuesToNotBeNull(
        column=column,
        row_condition=condition,
        condition_parser="pandas",
        description=f"must be set when {what}",
    )


def raw_expectations() -> dict[str, list[Any]]:
    """The expectation list per raw table (GE expectation objects)."""
    import great_expectations.expectations as gxe

    positive = {"strict_min": True, "description": "must be positive"}
    feats = ("feat_storage_gb", "support_tickets", "feat_reports", "feat_api_calls", "feat_sms")
    plan_ids = [p[0] for p in catalog.PLANS]
    rules: dict[str, list[Any]] = {
        "customers": [
            gxe.ExpectColumnValuesToNotBeNull(column="signup_date"),
            gxe.ExpectColumnValuesToBeInSet(column="country", value_set=list(catalog.COUNTRIES)),
            gxe.ExpectColumnValuesToBeInSet(column="currency", value_set=list(catalog.FX)),
            gxe.ExpectColumnValuesToBeInSet(column="segment", value_set=list(catalog.SEGMENTS)),
            gxe.ExpectColumnValuesToBeInSet(
                column="acquisition_channel", value_set=list(catalog.CHANNELS)
            ),
        ],
        "subscriptions": [
            gxe.ExpectColumnValuesToNotBeNull(column="start_date"),
            gxe.ExpectColumnValuesToBeInSet(column="cycle", value_set=["monthly", "annual"]),
            gxe.ExpectColumnValuesToBeInSet(
                column="status", value_set=["active", "past_due", "cancelled"]
            ),
            _between(gxe, "billing_day", 1, 31),
            _after(gxe, "cancelled_at", "start_date"),
            _after(gxe, "next_charge_at", "start_date", strict=True),
            _when(gxe, 'status == "cancelled"', "cancelled_at", "status is cancelled"),
            _when(gxe, 'status != "cancelled"', "next_charge_at", "not cancelled"),
        ],
        "invoices": [
            gxe.ExpectColumnValuesToNotBeNull(column="due_date"),
            _between(gxe, "amount", 0, None, **positive),
            gxe.ExpectColumnValuesToBeInSet(column="currency", value_set=list(catalog.FX)),
            gxe.ExpectColumnValuesToBeInSet(
                column="status", value_set=["paid", "retried", "failed"]
            ),
            _between(gxe, "attempts", 1, 1 + len(catalog.RETRY_DAYS)),
            _after(gxe, "due_date", "period_start"),
            _after(gxe, "paid_at", "due_date"),
            _when(gxe, 'status != "failed"', "paid_at", "the invoice was paid"),
        ],
        "payments": [
            gxe.ExpectColumnValuesToNotBeNull(column="attempted_at"),
            _between(gxe, "amount", 0, None, **positive),
            gxe.ExpectColumnValuesToBeInSet(column="status", value_set=["paid", "failed"]),
            _between(gxe, "attempt", 0, len(catalog.RETRY_DAYS)),
            gxe.ExpectColumnValuesToBeInSet(
                column="decline_code", value_set=list(catalog.DECLINE_CODES)
            ),
            _when(gxe, 'status == "failed"', "decline_code", "the attempt failed"),
            _after(gxe, "attempted_at", "invoice_due_date"),
        ],
        "usage": [
            gxe.ExpectColumnValuesToNotBeNull(column="month"),
            _between(gxe, "units", 0, None, description="must not be negative"),
            _between(gxe, "active_days", 0, 31),
            gxe.ExpectColumnValuesToBeInSet(
                column="included_units", value_set=[p[4] for p in catalog.PLANS]
            ),
            *(_between(gxe, c, 0, None, description="must not be negative") for c in feats),
        ],
        "offers": [
            gxe.ExpectColumnValuesToNotBeNull(column="offered_at"),
            gxe.ExpectColumnValuesToBeInSet(column="offer_type", value_set=list(catalog.OFFERS)),
            _between(gxe, "cost", 0, None, description="must not be negative"),
        ],
        "adoptions": [
            gxe.ExpectColumnValuesToNotBeNull(column="item"),
            gxe.ExpectColumnValuesToMatchRegex(column="item", regex=r"^(?:addon|plan):\w+$"),
        ],
        "plans": [
            gxe.ExpectColumnValuesToBeInSet(column="plan_id", value_set=plan_ids),
            _between(gxe, "tier", 1, len(plan_ids)),
            _between(gxe, "monthly_price", 0, None, **positive),
            _between(gxe, "included_units", 0, None, **positive),
        ],
        "addons": [_between(gxe, "monthly_price", 0, None, **positive)],
    }
    return {t: _schema(gxe, t) + rules[t] for t in RAW_TABLES}


def feature_expectations() -> list[Any]:
    """Expectations for the feature table, read from the feature contract in `features.schema`."""
    import great_expectations.expectations as gxe

    from features import schema

    out: list[Any] = [
        gxe.ExpectTableColumnsToMatchSet(
            column_set=["customer_id", "as_of", *schema.COLUMNS, LABEL],
            exact_match=False,
            description="must have every contract column and the label",
        ),
        gxe.ExpectTableRowCountToBeBetween(min_value=1, description="must not be empty"),
        gxe.ExpectColumnValuesToNotBeNull(
            column="customer_id", description="must not be null (an id)"
        ),
        gxe.ExpectColumnValuesToNotBeNull(column="as_of"),
        gxe.ExpectColumnValuesToBeInTypeList(column="as_of", type_list=KINDS["date"]),
        gxe.ExpectCompoundColumnsToBeUnique(
            column_list=["customer_id", "as_of"],
            description="must be unique together (one row per customer and date)",
        ),
        gxe.ExpectColumnValuesToBeInSet(column=LABEL, value_set=[0, 1]),
        gxe.ExpectColumnValuesToNotBeNull(column=LABEL),
    ]
    for f in schema.FEATURES:
        out.append(gxe.ExpectColumnValuesToNotBeNull(column=f.name))
        if f.kind == "numeric":
            out.append(
                gxe.ExpectColumnValuesToBeInTypeList(column=f.name, type_list=KINDS["number"])
            )
            if f.low is not None or f.high is not None:
                out.append(_between(gxe, f.name, f.low, f.high))
        else:
            out.append(
                gxe.ExpectColumnValuesToBeInSet(
                    column=f.name, value_set=list(schema.VOCABULARY[f.name])
                )
            )
    return out


# --- computed columns ---------------------------------------------------------------------


def _orphans(values: pd.Series, known: pd.Series) -> pd.Series:
    """The value where it is missing from `known`, else None (null ids are checked elsewhere)."""
    bad = values.notna() & ~values.isin(known)
    return pd.Series(values.astype(object).where(bad, None), index=values.index, dtype=object)


def with_checks(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Copies of the raw tables with the computed columns the suites check.

    `orphan_<column>` holds the value of `<column>` when it is missing from its parent table (see
    `REFERENCES`), else null; `payments.invoice_due_date` is the due date of the paid invoice.
    A reference whose columns are absent is skipped (the schema expectations report that).
    """
    out = {name: df.copy() for name, df in tables.items()}
    for (child, column), (parent, pkey) in REFERENCES.items():
        df, par = out[child], tables[parent]
        if column in df and pkey in par:
            df[f"orphan_{column}"] = _orphans(df[column], par[pkey])
        else:
            df[f"orphan_{column}"] = None
    pay, inv = out["payments"], tables["invoices"]
    if {"invoice_id", "due_date"} <= set(inv) and "invoice_id" in pay:
        due = inv.drop_duplicates("invoice_id").set_index("invoice_id")["due_date"]
        pay["invoice_due_date"] = pay["invoice_id"].map(due)
    else:
        pay["invoice_due_date"] = pd.NaT
    return out


# --- running ------------------------------------------------------------------------------


def _context(settings: Settings) -> Any:
    """The GE file context under `reports/gx`, with the Data Docs site in `reports/data_docs`."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    root = settings.path(GX_DIR)
    root.mkdir(parents=True, exist_ok=True)
    context = gx.get_context(mode="file", project_root_dir=str(root))
    if SITE_NAME not in context.get_site_names():
        docs = os.path.relpath(settings.path(DOCS_DIR), root / "gx")
        context.add_data_docs_site(
            site_name=SITE_NAME,
            site_config={
                "class_name": "SiteBuilder",
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": docs,
                },
            },
        )
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        context.variables.save()
    return context


def _checkpoint(context: Any, name: str, expectations: list[Any]) -> Any:
    import great_expectations as gx

    source = context.data_sources.add_or_update_pandas(DATASOURCE)
    asset = source.add_dataframe_asset(name)
    batch = asset.add_batch_definition_whole_dataframe("whole")
    # built whole: adding to a suite the store already knows would save it once per expectation
    suite = context.suites.add_or_update(gx.ExpectationSuite(name=name, expectations=expectations))
    definition = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=name, data=batch, suite=suite)
    )
    return context.checkpoints.add_or_update(
        gx.Checkpoint(
            name=name,
            validation_definitions=[definition],
            actions=[],
            result_format={"result_format": "SUMMARY", "partial_unexpected_count": EXAMPLES},
        )
    )


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, float | int | str | bool) or value is None:
        return value
    return str(value)


def _describe(kind: str, kw: dict[str, Any]) -> str:
    """A readable rule for expectations declared without a description."""

    def listed(values: Any) -> str:
        return "/".join(map(str, values))

    low, high = kw.get("min_value"), kw.get("max_value")
    phrases = {
        "expect_column_values_to_be_in_set": lambda: f"must be one of {listed(kw['value_set'])}",
        "expect_column_values_to_be_in_type_list": lambda: (
            f"must have type {listed(kw['type_list'])}"
        ),
        "expect_column_values_to_not_be_null": lambda: "must not be null",
        "expect_column_values_to_match_regex": lambda: f"must match {kw['regex']}",
        "expect_column_values_to_be_between": lambda: (
            f"must be between {low} and {high}"
            if low is not None and high is not None
            else f"must be >= {low}"
            if low is not None
            else f"must be <= {high}"
        ),
    }
    if kind in phrases:
        return phrases[kind]()
    return kind.removeprefix("expect_").replace("_", " ")


def _examples(res: dict[str, Any]) -> list[Any]:
    seen: list[Any] = []
    for value in res.get("partial_unexpected_list") or []:
        value = _plain(value)
        if value is not None and value == value and value not in seen:  # drop None/NaN
            seen.append(value)
    if not seen and res.get("observed_value") is not None:
        seen = [f"observed {_plain(res['observed_value'])}"]
    if (res.get("details") or {}).get("mismatched"):
        seen = [_plain(res["details"]["mismatched"])]
    return seen[:EXAMPLES]


def _failure(table: str, r: Any) -> Failure:
    cfg = r.expectation_config
    kw = cfg.kwargs
    pair = ",".join(c for c in (kw.get("column_A"), kw.get("column_B")) if c)
    column = kw.get("column") or ",".join(kw.get("column_list") or []) or pair or None
    if column and column.startswith("orphan_"):  # computed for referential integrity
        column = column.removeprefix("orphan_")
    res = r.result or {}
    description = cfg.description or _describe(cfg.type, kw)
    info = r.exception_info or {}
    messages = [info.get("exception_message")] + [
        v.get("exception_message") for v in info.values() if isinstance(v, dict)
    ]
    error = next((m for m in messages if m), None)
    if error:
        description += f" (could not evaluate: {error.splitlines()[0][:160]})"
    return Failure(
        table=table,
        expectation=cfg.type,
        column=column,
        unexpected=res.get("unexpected_count"),
        examples=_examples(res),
        description=description,
    )


def run_suites(
    settings: Settings, frames: dict[str, pd.DataFrame], suites: dict[str, list[Any]]
) -> ValidationResult:
    """Validate each frame against its suite through a GE checkpoint and build Data Docs.

    Args:
        settings: where `reports/` lives.
        frames: suite name -> the frame to validate.
        suites: suite name -> expectations.

    Returns:
        The combined result; `docs_path` is the Data Docs index.
    """
    start = time.perf_counter()
    context = _context(settings)
    failures: list[Failure] = []
    evaluated: dict[str, int] = {}
    identifiers = []
    for name, frame in frames.items():
        checkpoint = _checkpoint(context, name, suites[name])
        run = checkpoint.run(batch_parameters={"dataframe": frame})
        for identifier, result in run.run_results.items():
            identifiers.append(identifier)
            evaluated[name] = evaluated.get(name, 0) + len(result.results)
            failures += [_failure(name, r) for r in result.results if not r.success]
    context.build_data_docs(site_names=[SITE_NAME], resource_identifiers=identifiers)
    return ValidationResult(
        success=not failures,
        failures=failures,
        docs_path=settings.path(DOCS_DIR) / "index.html",
        rows={name: len(frame) for name, frame in frames.items()},
        expectations=evaluated,
        seconds=round(time.perf_counter() - start, 3),
    )


def load_raw(raw_dir: Path) -> dict[str, pd.DataFrame]:
    """Read every raw table the suites cover.

    Raises:
        DataError: a table is missing or unreadable.
    """
    if not Path(raw_dir).is_dir():
        raise DataError(f"{raw_dir}: not a directory of raw tables (run `paycycle simulate`)")
    return {name: read_table(Path(raw_dir), name) for name in RAW_TABLES}


def validate_raw(settings: Settings, raw_dir: Path | None = None) -> ValidationResult:
    """Validate the raw tables (not the truth) and write Data Docs under `reports/data_docs/`.

    Args:
        settings: project settings.
        raw_dir: the folder of raw tables; defaults to `settings.raw_dir`.

    Returns:
        The result; call `raise_for_failures()` to stop a pipeline on bad data.
    """
    tables = load_raw(Path(raw_dir or settings.raw_dir))
    return run_suites(settings, with_checks(tables), raw_expectations())


def validate_features(settings: Settings, path: Path | None = None) -> ValidationResult:
    """Validate the feature table (`features.path` by default) against the feature contract."""
    path = Path(path or settings.path(settings.params.features.path))
    if not path.is_file():
        raise DataError(f"{path}: feature table not found (run `paycycle features`)")
    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable Parquet ({str(exc).splitlines()[0]})") from None
    return run_suites(settings, {FEATURE_SUITE: frame}, {FEATURE_SUITE: feature_expectations()})


def validate_path(settings: Settings, path: Path) -> ValidationResult:
    """`validate_raw` for a folder, `validate_features` for a Parquet file."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    return validate_raw(settings, path) if path.is_dir() else validate_features(settings, path)

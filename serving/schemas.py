"""Request and response models of the serving API.

The customer model is generated from `features.schema.FEATURES`, so the bounds, defaults and
category vocabularies the model was trained on are the ones OpenAPI shows and pydantic enforces
(a bad field is a 422 naming it). Numbers are strict: `"80"` is not a number. Optional features
default to the schema's typical-customer values; an explicit null means the same.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model, model_validator

from features import schema
from paycycle import catalog

MAX_CUSTOMERS = 1_000  # per request; bigger jobs belong to batch scoring
ID_MAX_LENGTH = 128
UNBOUNDED_CAP = 1e12
RiskBand = Literal["low", "medium", "high"]


def _numeric(feature: schema.Feature, required: bool) -> tuple[Any, Any]:
    bounds: dict[str, float] = {}
    if feature.low is not None:
        bounds["ge"] = feature.low
    # Unbounded counts are capped so every value stays finite in the model's float32 inputs.
    bounds["le"] = feature.high if feature.high is not None else UNBOUNDED_CAP
    default = ... if required else float(feature.default)
    kind = float if required else float | None
    field = Field(default, strict=True, allow_inf_nan=False, description=feature.doc, **bounds)
    return Annotated[kind, field], default


def _categorical(feature: schema.Feature) -> tuple[Any, Any]:
    kind = Literal[schema.VOCABULARY[feature.name]]  # type: ignore[valid-type]
    default = str(feature.default)
    return Annotated[kind | None, Field(default, description=feature.doc)], default


def _customer_fields() -> dict[str, Any]:
    fields: dict[str, Any] = {
        "customer_id": (
            Annotated[
                str | None,
                Field(None, max_length=ID_MAX_LENGTH, description="echoed back; not a feature"),
            ],
            None,
        )
    }
    for feature in schema.FEATURES:
        if feature.kind == "numeric":
            fields[feature.name] = _numeric(feature, feature.name in schema.REQUIRED)
        else:
            fields[feature.name] = _categorical(feature)
    return fields


Customer = create_model(
    "Customer",
    __config__=ConfigDict(extra="forbid", frozen=True),
    __doc__="Raw features of one customer; only the seed's three are required, the rest default.",
    **_customer_fields(),
)

Customers = Annotated[
    list[Customer],  # type: ignore[valid-type]
    Field(min_length=1, max_length=MAX_CUSTOMERS, description="customers to score"),
]

TopK = Annotated[int, Field(ge=1, le=20, strict=True, description="how many items to rank")]

# --- /recommend and /offer: a profile = the churn features + the plan, add-ons and usage history

PLAN_IDS = tuple(p[0] for p in catalog.PLANS)
PLAN_TIER = {p[0]: float(p[2]) for p in catalog.PLANS}
PLAN_PRICE = {p[0]: p[3] for p in catalog.PLANS}
# features a profile derives instead of taking them: tier from plan_id, count from addons,
# plan_fit = ln(usage ÷ included) from usage_pattern (as `features.build` computes it)
DERIVED = ("plan_tier", "addons_count", "plan_fit")
HISTORY_SIGNALS = tuple(a[3] for a in catalog.ADDONS)
AddonName = Literal[tuple(catalog.ADDON_NAMES)]  # type: ignore[valid-type]


def _known_plan(plan_id: int) -> int:
    if plan_id not in PLAN_TIER:
        plans = ", ".join(f"{p[0]} ({p[1]})" for p in catalog.PLANS)
        raise ValueError(f"unknown plan id {plan_id}; expected one of {plans}")
    return plan_id


PlanId = Annotated[
    int,
    Field(
        strict=True,
        description="current plan: " + ", ".join(f"{p[0]} = {p[1]}" for p in catalog.PLANS),
        json_schema_extra={"enum": list(PLAN_IDS)},
    ),
    AfterValidator(_known_plan),
]


def _usage(doc: str) -> Any:
    field = Field(None, ge=0, le=UNBOUNDED_CAP, strict=True, allow_inf_nan=False, description=doc)
    return Annotated[float | None, field], None


class ProfileBase(BaseModel):
    """What `Profile` derives from its fields (read by the column builders like features)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _charge_from_plan(cls, data: Any) -> Any:
        """Without `monthly_charge_usd`, the customer pays the plan's list price."""
        if isinstance(data, dict) and data.get("monthly_charge_usd") is None:
            plan = data.get("plan_id")
            price = PLAN_PRICE.get(plan) if type(plan) is int else None  # noqa: E721 - no bools
            if price is not None:
                annual = data.get("cycle") == "annual"
                per_month = price * catalog.ANNUAL_MONTHS_CHARGED / 12 if annual else price
                data = {**data, "monthly_charge_usd": round(per_month, 2)}
        return data

    @property
    def plan_tier(self) -> float:
        return PLAN_TIER[self.plan_id]  # type: ignore[attr-defined]

    @property
    def addons_count(self) -> float:
        return float(len(set(self.addons)))  # type: ignore[attr-defined]

    @property
    def plan_fit(self) -> float:
        return math.log(max(self.usage_pattern / 100, 1e-3))  # type: ignore[attr-defined]


def _profile_fields() -> dict[str, Any]:
    fields = {k: v for k, v in _customer_fields().items() if k not in DERIVED}
    fields["plan_id"] = (PlanId, ...)
    fields["addons"] = (
        Annotated[
            tuple[AddonName, ...],  # type: ignore[valid-type]
            Field((), max_length=len(catalog.ADDONS), description="add-ons owned now"),
        ],
        (),
    )
    fields["hist_usage_ratio"] = _usage(
        "usage ÷ included units, geometric mean of the last 3 months (default: usage_pattern/100)"
    )
    for signal in HISTORY_SIGNALS:
        fields[f"hist_{signal}"] = _usage(f"mean monthly {signal}, last 6 months (default: last)")
    return fields


Profile = create_model(
    "Profile",
    __base__=ProfileBase,
    __doc__=(
        "A customer for /recommend and /offer: the raw features (only the seed's three are "
        "required), the current plan and owned add-ons from the catalog, optional usage history."
        " plan_tier, addons_count and plan_fit are derived, monthly_charge_usd defaults to the "
        "plan's price."
    ),
    **_profile_fields(),
)

Profiles = Annotated[
    list[Profile],  # type: ignore[valid-type]
    Field(min_length=1, max_length=MAX_CUSTOMERS, description="customers (profile + usage)"),
]


class ChurnScore(BaseModel):
    customer_id: str | None = None
    churn_probability: float = Field(ge=0, le=1, description="P(churn in the next 30 days)")
    risk_band: RiskBand
    model_version: str = Field(description="the paycycle-churn version that answered")
    prediction_id: str = Field(description="joins this prediction to its outcome (monitoring)")


class RankedItem(BaseModel):
    item: str = Field(description="`addon:<name>` or `plan:<name>` from the catalog")
    kind: Literal["plan", "addon"]
    score: float = Field(ge=0, le=1, description="P(this is the next adoption | one happens)")


class Recommendation(BaseModel):
    customer_id: str | None = None
    items: list[RankedItem] = Field(
        description="best first; never an owned add-on, the current plan or a plan move the "
        "usage does not call for (may be empty)"
    )
    model_version: str


class OfferDecision(BaseModel):
    customer_id: str | None = None
    offer: Literal[tuple(catalog.OFFER_TYPES)] | None = Field(  # type: ignore[valid-type]
        description="offer type, or null when no offer has a positive expected value"
    )
    expected_value: float = Field(
        description="USD; P(accept)·(revenue kept − cost), revenue kept from P(churn) and the "
        "offer's retention effect over the CLV horizon; ≤ 0 when no offer is made"
    )
    accept_probability: float = Field(ge=0, le=1, description="P(accept) of the offer shown")
    reason: str
    churn_probability: float = Field(ge=0, le=1)
    model_version: str = Field(description="churn model version (paycycle-churn)")
    policy_version: str = Field(description="offer policy version (paycycle-offers)")
    prediction_id: str = Field(description="id of the churn prediction behind this decision")


class ModelStatus(BaseModel):
    name: str
    alias: str
    version: str | None
    loaded: bool
    error: str | None = None
    model_calls: int = Field(0, description="batched model calls since loaded")
    requests_per_call: float = Field(0.0, description="mean requests coalesced per model call")


class Readiness(BaseModel):
    ready: bool
    models: list[ModelStatus]
    pid: int
    # the challenger's rollout as this worker sees it (`serving.rollout`), None when none ran
    rollout: dict[str, Any] | None = None


class ReloadStatus(BaseModel):
    """The background reload (`POST`/`GET /admin/reload`): one load at a time."""

    state: Literal["idle", "loading", "done", "failed"] = Field(
        description="idle: none yet; loading: one is running; done/failed: how the last ended"
    )
    busy: bool = Field(
        description="a load thread is running (also one that passed its deadline and is ignored)"
    )
    started_at: str | None = Field(None, description="ISO-8601 UTC start of the last load")
    finished_at: str | None = Field(None, description="ISO-8601 UTC end (or deadline) of it")
    timeout_s: float = Field(description="deadline of a load (`serving.reload_timeout_s`)")
    versions: dict[str, str | None] = Field(
        default_factory=dict, description="registered model -> version served after the load"
    )
    error: str | None = Field(None, description="why it failed or what it kept (redacted)")


class ErrorBody(BaseModel):
    error: str
    detail: list[dict[str, Any]] | None = None

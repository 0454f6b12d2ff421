"""The product catalog and fixed reference tables shared by the simulator, features and models.

Prices are in USD; a customer is billed in the currency of their country at the fixed `FX` rate.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# The simulator's tables, parents before children (the store loads them in this order).
CATALOG_TABLES = ("plans", "addons")
EVENT_TABLES = (
    "customers",
    "subscriptions",
    "invoices",
    "payments",
    "usage",
    "offers",
    "adoptions",
)
RETENTION_TABLES = ("cards", "trials")  # card expiry dates and trials (dunning, trial notices)
RAW_TABLES = (*CATALOG_TABLES, *EVENT_TABLES, *RETENTION_TABLES)

# plan_id, name, tier, monthly price (USD), included usage units per month
PLANS: list[tuple[int, str, int, float, int]] = [
    (1, "starter", 1, 19.0, 1_000),
    (2, "growth", 2, 49.0, 5_000),
    (3, "pro", 3, 99.0, 20_000),
    (4, "enterprise", 4, 249.0, 100_000),
]
ANNUAL_MONTHS_CHARGED = 10  # an annual plan costs ten monthly prices

# addon_id, name, monthly price (USD), the usage feature that signals a need for it
ADDONS: list[tuple[int, str, float, str]] = [
    (101, "extra_storage", 9.0, "feat_storage_gb"),
    (102, "priority_support", 19.0, "support_tickets"),
    (103, "analytics", 15.0, "feat_reports"),
    (104, "api_access", 25.0, "feat_api_calls"),
    (105, "sms_pack", 12.0, "feat_sms"),
]
ADDON_NAMES = [a[1] for a in ADDONS]

# country -> (currency, locale, share of signups)
COUNTRIES: dict[str, tuple[str, str, float]] = {
    "BR": ("BRL", "pt-BR", 0.35),
    "US": ("USD", "en", 0.30),
    "GB": ("GBP", "en", 0.12),
    "DE": ("EUR", "en", 0.13),
    "MX": ("MXN", "en", 0.10),
}
FX: dict[str, float] = {"USD": 1.0, "BRL": 5.0, "GBP": 0.8, "EUR": 0.92, "MXN": 17.0}

SEGMENTS = ("consumer", "smb", "midmarket", "enterprise")
SEGMENT_SHARE = (0.35, 0.40, 0.18, 0.07)
CHANNELS = ("organic", "paid_search", "referral", "partner", "social", "affiliate")
CHANNEL_SHARE = (0.35, 0.25, 0.15, 0.10, 0.15, 0.0)  # affiliate appears only in segment_mix

# Retention offers: type -> (cost as a share of one monthly bill, months the effect lasts)
OFFERS: dict[str, tuple[float, int]] = {
    "discount_10": (0.30, 3),  # 10% off for 3 months
    "discount_20": (0.60, 3),  # 20% off for 3 months
    "free_month": (1.00, 3),
    "plan_change": (0.40, 3),  # move to the plan that fits usage; revenue given up
    "addon_trial": (0.15, 3),
}
OFFER_TYPES = tuple(OFFERS)

# Payment decline codes and whether the decline is hard (a retry cannot succeed without a new card)
DECLINE_CODES: dict[str, tuple[float, bool]] = {
    "insufficient_funds": (0.50, False),
    "processing_error": (0.20, False),
    "expired_card": (0.15, True),
    "closed_account": (0.10, True),
    "stolen_card": (0.05, True),
}
RETRY_DAYS = (1, 3, 7)  # the processor's retry schedule after a failed first attempt
HARD_DECLINES = tuple(k for k, (_, hard) in DECLINE_CODES.items() if hard)


def plans_frame() -> pd.DataFrame:
    """The plan table as written by the simulator."""
    df = pd.DataFrame(PLANS, columns=["plan_id", "name", "tier", "monthly_price", "included_units"])
    df["annual_price"] = df["monthly_price"] * ANNUAL_MONTHS_CHARGED
    df["addons"] = ",".join(ADDON_NAMES)
    return df


def addons_frame() -> pd.DataFrame:
    """The add-on table as written by the simulator."""
    return pd.DataFrame(ADDONS, columns=["addon_id", "name", "monthly_price", "signal"])


def is_hard(code: np.ndarray | str) -> np.ndarray:
    """Whether each decline code is hard (a retry on the same card cannot succeed)."""
    return np.isin(np.asarray(code, dtype=object), list(HARD_DECLINES))

"""Calendar helpers shared by the simulator, features, notices and dunning (numpy day arithmetic).

Dates are `datetime64[D]` arrays (anything `np.asarray(...).astype("datetime64[D]")` accepts).
"""

from __future__ import annotations

import datetime as dt

import numpy as np


def as_days(x: object) -> np.ndarray:
    """`x` as a `datetime64[D]` array."""
    return np.asarray(x).astype("datetime64[D]")


def month_starts(start: dt.date, months: int) -> np.ndarray:
    """First day of each month from `start`'s month, plus the day after the last one."""
    first = np.datetime64(start, "M")
    return (first + np.arange(months + 1)).astype("datetime64[D]")


def month_end(day: np.ndarray) -> np.ndarray:
    """Last day of the month of each date."""
    return ((as_days(day).astype("datetime64[M]") + 1).astype("datetime64[D]")) - 1


def payday(day: np.ndarray) -> np.ndarray:
    """1st, 2nd, 15th, 16th or last day of the month."""
    d = as_days(day)
    dom = (d - d.astype("datetime64[M]").astype("datetime64[D]")).astype(int) + 1
    return np.isin(dom, (1, 2, 15, 16)) | (d == month_end(d))


def weekday(day: np.ndarray) -> np.ndarray:
    """Monday = 0 … Sunday = 6."""
    return (as_days(day).astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday

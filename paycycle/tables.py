"""The raw-table reader: one table of `<dir>/<table>/part-NNNNN.parquet` as one DataFrame.

The layout is what the simulator writes to `data/raw` (and its truth to `data/truth`), and what
a real export must match (`features.validation`, `paycycle.loader`).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from paycycle.errors import DataError


def read_table(directory: Path, name: str, columns: list[str] | None = None) -> pd.DataFrame:
    """Read one table (all its parts) from `directory`.

    Raises:
        DataError: the table is missing or a part cannot be read.
    """
    path = directory / name
    parts = sorted(path.glob("part-*.parquet"))
    if not parts:
        raise DataError(f"{path}: no Parquet parts found (run `paycycle simulate` first)")
    frames = []
    for part in parts:
        try:
            frames.append(pq.read_table(part, columns=columns).to_pandas())
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"{part}: unreadable Parquet ({str(exc).splitlines()[0]})") from None
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]

"""`notebooks/model_training.ipynb` runs top to bottom on small data (nbclient)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "model_training.ipynb"


def test_notebook_trains_scores_the_seed_example_and_compares_runs(tmp_path: Path) -> None:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOK, as_version=4)
    os.environ["PAYCYCLE_NOTEBOOK_ROOT"] = str(tmp_path)
    os.environ["PAYCYCLE_NOTEBOOK_CUSTOMERS"] = "3000"
    try:
        NotebookClient(
            nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
        ).execute()
    finally:
        del os.environ["PAYCYCLE_NOTEBOOK_ROOT"], os.environ["PAYCYCLE_NOTEBOOK_CUSTOMERS"]
    text = "\n".join(
        o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
    )
    assert "champion: version" in text
    assert "churn_probability" in text and "metrics.auc" in text
    assert (tmp_path / "mlruns.db").exists()

"""Behavioural tests of the churn model on the small simulation (trains in seconds)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from paycycle.config import ChurnParams

FAST = ChurnParams(hidden_units=(32, 16), epochs=8, patience=3, batch_size=512, seed=3)


@pytest.fixture(scope="module")
def table(small_sim: Path, tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    from features.build import attach_oracle
    from features.table import snapshot_dates, write_feature_table

    dates = snapshot_dates(dt.date(2025, 1, 1), 12, 6)
    out = tmp_path_factory.mktemp("features") / "features.parquet"
    return attach_oracle(write_feature_table(small_sim / "raw", out, dates), small_sim / "truth")


@pytest.fixture(scope="module")
def model(table: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory):
    from inference.churn import load_scorer
    from training.churn.model import export_churn, split_holdout, train_churn

    train, holdout = split_holdout(table)
    trained = train_churn(train, FAST)
    scorer = load_scorer(export_churn(trained, tmp_path_factory.mktemp("export") / "churn"))
    return trained, scorer, holdout


def test_time_split_keeps_the_last_snapshot_out(table: pd.DataFrame) -> None:
    from training.churn.model import split_holdout

    train, holdout = split_holdout(table)
    assert train["as_of"].max() < holdout["as_of"].min()
    assert holdout["as_of"].nunique() == 1 and len(train) + len(holdout) == len(table)


def test_beats_chance_and_stays_calibrated(model) -> None:
    from training.churn.evaluate import evaluate_churn

    trained, scorer, holdout = model
    m = evaluate_churn(holdout["churned"], scorer(holdout), holdout["oracle_p"])
    assert m["oracle_auc_ratio"] > 0.8, m  # ~80 churners in this holdout: AUC noise ±0.03
    assert m["ece"] < 0.03 and m["brier"] < m["base_rate"], m
    # the bias correction undoes the class weights: mean prediction ≈ churn rate
    assert abs(m["mean_prediction"] - m["base_rate"]) < 0.02, m
    assert trained.pos_weight > 1


def test_compiled_scorer_matches_keras_and_takes_columns(model) -> None:
    from features import schema

    trained, scorer, holdout = model
    np.testing.assert_allclose(scorer(holdout), trained.predict(holdout), atol=1e-5)
    cols = {c: holdout[c].to_numpy() for c in schema.COLUMNS}  # the service's input shape
    np.testing.assert_allclose(scorer(cols), scorer(holdout), atol=1e-6)


def test_seed_customers_get_monotone_risk(model) -> None:
    from training.churn.behaviour import check_seed_monotone, seed_frame

    _, scorer, _ = model
    p = scorer(seed_frame())
    assert check_seed_monotone(scorer) == [], p
    assert p.argmax() == 2  # 3 failed payments and 20% use is the riskiest


def test_more_failed_payments_raise_risk(model) -> None:
    from training.churn.behaviour import check_directional

    _, scorer, holdout = model
    assert check_directional(scorer, holdout.sample(300, random_state=0)) == []


def test_customer_id_does_not_matter(model) -> None:
    from training.churn.behaviour import check_invariance

    _, scorer, holdout = model
    assert check_invariance(scorer, holdout.head(200)) == []


def test_blank_numerics_and_unknown_categories_score(model) -> None:
    _, scorer, holdout = model
    rows = holdout.head(3).copy()
    rows["usage_trend"] = np.nan
    rows["country"] = "ZZ"  # out of vocabulary slot
    p = scorer(rows)
    assert np.isfinite(p).all() and ((p > 0) & (p < 1)).all()


def test_same_seed_same_model(table: pd.DataFrame) -> None:
    """Also with another thread drawing from Python's global `random` meanwhile (an HTTP
    client's retry jitter, a server in the same process): Keras draws its initializer and
    dropout seeds from it, and CI once trained two different models from one seed that way.
    The seeds are now drawn from a generator of our own (`seed_draws`), equal to Keras's."""
    import random
    import threading

    from training.churn.model import split_holdout, train_churn

    train, holdout = split_holdout(table)
    small = train[train["as_of"] == train["as_of"].max()]
    params = FAST.model_copy(update={"epochs": 2, "dropout": 0.1})
    a = train_churn(small, params, seed=5).predict(holdout)
    stop = threading.Event()

    def draw() -> None:
        while not stop.is_set():
            random.random()

    neighbour = threading.Thread(target=draw, daemon=True)
    neighbour.start()
    try:
        b = train_churn(small, params, seed=5).predict(holdout)
    finally:
        stop.set()
        neighbour.join()
    c = train_churn(small, params, seed=6).predict(holdout)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def _numpy_matches_savedmodel(scorer, holdout: pd.DataFrame) -> None:
    """The export's NumPy pass equals the SavedModel on holdout rows, random rows with blanks
    and unknown categories, and rows sending only the required columns; the service uses it."""
    from features import schema
    from features.columns import customers_to_columns
    from inference.compiled import compile_scorer
    from inference.numpy_forward import agreement_rows

    assert scorer.forward is not None
    batches = [
        {c: holdout[c].to_numpy() for c in schema.COLUMNS},
        agreement_rows(scorer.spec, n=400, seed=7),
        {c: holdout[c].to_numpy() for c in schema.REQUIRED},
    ]
    for cols in batches:
        np.testing.assert_allclose(scorer.forward(cols), scorer(cols), rtol=0, atol=1e-6)
    # the service's columns carry their matrices: the forward pass gathers from them instead
    served = customers_to_columns(holdout[list(schema.COLUMNS)].head(50).to_dict("records"))
    fast, plain = scorer.forward(served), scorer.forward(dict(served))
    np.testing.assert_array_equal(fast, plain)
    np.testing.assert_allclose(fast, scorer(dict(served)), rtol=0, atol=1e-6)
    assert compile_scorer(scorer) is scorer.forward


def test_numpy_forward_matches_the_one_hot_model(model) -> None:
    _, scorer, holdout = model
    _numpy_matches_savedmodel(scorer, holdout)


def test_numpy_forward_matches_the_embedding_model(table: pd.DataFrame, tmp_path: Path) -> None:
    from inference.churn import load_scorer
    from training.churn.model import export_churn, split_holdout, train_churn

    train, holdout = split_holdout(table)
    small = train[train["as_of"] == train["as_of"].max()]
    params = FAST.model_copy(update={"epochs": 2, "embedding_dim": 3})
    trained = train_churn(small, params)
    assert trained.model.get_layer("country_emb") is not None
    _numpy_matches_savedmodel(load_scorer(export_churn(trained, tmp_path / "emb")), holdout)


def test_a_bad_forward_file_falls_back_to_tensorflow(
    model, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A truncated forward.npz and one whose weights disagree with the SavedModel are both
    refused at load with a warning, and the service scores with TensorFlow (as it does, without
    a warning, for an export that has none)."""
    from features import schema
    from inference.churn import load_scorer
    from inference.compiled import compile_scorer
    from inference.numpy_forward import FORWARD_FILE, save_forward
    from training.churn.model import export_churn

    trained, _, holdout = model
    path = export_churn(trained, tmp_path / "churn")
    cols = {c: holdout[c].to_numpy() for c in schema.COLUMNS}
    forward = path / FORWARD_FILE
    good = dict(np.load(forward))
    forward.unlink()  # an export from before the NumPy pass: TF, nothing to warn about
    with caplog.at_level("WARNING"):
        assert load_scorer(path).forward is None
    assert not [r for r in caplog.records if r.name.startswith("inference")]
    save_forward(forward, good)
    forward.write_bytes(forward.read_bytes()[:200])
    with caplog.at_level("WARNING"):
        truncated = load_scorer(path)
    assert truncated.forward is None and "forward.npz" in caplog.text
    np.testing.assert_allclose(compile_scorer(truncated)(cols), truncated(cols), atol=1e-7)

    caplog.clear()
    save_forward(forward, good | {"bias.0": good["bias.0"] + 0.5})
    with caplog.at_level("WARNING"):
        shifted = load_scorer(path)
    assert shifted.forward is None and "differs from the SavedModel" in caplog.text
    np.testing.assert_allclose(compile_scorer(shifted)(cols), shifted(cols), atol=1e-7)

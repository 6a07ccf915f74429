"""The compiled trees give LightGBM's raw scores (to 1e-9) on every kind of row, and large
batches go through them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mqlengine.predict import compiled, synthetic
from mqlengine.predict import modeling as md

pytestmark = pytest.mark.skipif(not compiled.available(), reason="lleaves is not installed")

CATEGORICAL = ("seniority", "industry", "noise_cat")


@pytest.fixture(scope="module")
def model() -> md.FittedModel:
    frame, y = synthetic.leads(4000, seed=5)
    return md.fit_best(md.FeatureFrame(frame, CATEGORICAL), y, seed=0, max_trials=2)


def _rows() -> pd.DataFrame:
    frame, _ = synthetic.leads(3000, seed=6)
    frame = frame.copy()
    # missing values of every kind, and levels the model never saw (NaN codes)
    frame.loc[::7, "employees"] = np.nan
    frame["seniority"] = frame["seniority"].astype(object)
    frame.loc[::5, "seniority"] = None
    frame.loc[1::11, "seniority"] = "astronaut"
    frame.loc[::13, "visits"] = np.nan
    return frame


def test_compiled_trees_equal_lightgbm(model: md.FittedModel) -> None:
    assert model.booster is not None
    matrix = model.matrix(_rows())
    assert np.isnan(matrix).any()
    expected = model.booster.predict(matrix, raw_score=True, num_threads=1)
    forest = model.compiled()
    for threads in (1, 2):
        got = compiled.raw_scores(forest, matrix, threads)
        assert got.shape == expected.shape
        assert np.max(np.abs(got - expected)) <= 1e-9
    assert model.compiled() is forest  # compiled once per model text
    # extreme and out-of-range values follow LightGBM's routing too
    odd = matrix[:4].copy()
    odd[0, :] = np.nan
    odd[1, 1] = 1e300
    odd[2, 1] = -1e300
    odd[3, 0] = 99.0  # a category code past the known levels
    assert np.allclose(
        compiled.raw_scores(forest, odd, 1),
        model.booster.predict(odd, raw_score=True, num_threads=1),
        rtol=0,
        atol=1e-9,
    )


def test_large_batches_use_the_compiled_trees(
    model: md.FittedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = _rows()
    assert model.booster is not None
    direct = model.calibrator.apply(
        model.booster.predict(model.matrix(frame), raw_score=True, num_threads=1)
    )
    used: list[int] = []
    original = compiled.raw_scores

    def counting(forest: object, matrix: np.ndarray, threads: int) -> np.ndarray:
        used.append(len(matrix))
        return original(forest, matrix, threads)

    monkeypatch.setattr(compiled, "raw_scores", counting)
    small = model.predict(frame)  # below COMPILE_ROWS: LightGBM itself
    assert not used
    monkeypatch.setattr(compiled, "COMPILE_ROWS", 1000)
    large = model.predict(frame)
    assert used == [len(frame)]
    assert np.max(np.abs(large - direct)) <= 1e-9
    assert np.array_equal(small, direct)

"""Segmentation: capping, two well-separated clusters found, names from centroid profiles."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cardlake.ml import metrics
from cardlake.ml.segmentation import (
    cap_bounds,
    capped,
    centroids,
    clustering_pipeline,
    name_segments,
)


def test_names_follow_the_profile_rules():
    profile = pd.DataFrame(
        {"atm_rate": [2.0, -0.5, -0.4], "online_rate": [-1.0, 1.5, -0.2],
         "cross_border_rate": [0.0, 0.1, 2.2]},
        index=pd.Index([0, 1, 2], name="cluster"),
    )
    rules = {"cash_heavy": {"atm_rate": 1.0}, "digital": {"online_rate": 1.0},
             "travellers": {"cross_border_rate": 1.0}, "unused": {"atm_rate": 0.1}}
    assert name_segments(profile, rules) == {0: "cash_heavy", 1: "digital", 2: "travellers"}


def test_clusters_left_over_are_mixed():
    profile = pd.DataFrame({"atm_rate": [1.0, -1.0]}, index=[0, 1])
    assert name_segments(profile, {"cash": {"atm_rate": 1.0}}) == {0: "cash", 1: "mixed_1"}


@pytest.fixture
def two_groups(spark):
    rng = np.random.default_rng(3)
    rows = [(f"c{i}", float(rng.normal(0.8 if i % 2 else 0.1, 0.03)),
             float(rng.normal(1000 if i % 2 else 20, 5)), i % 2) for i in range(80)]
    rows.append(("outlier", 0.1, 1e9, 0))  # capped, so it cannot pull a centre of its own
    return spark.createDataFrame(rows, "customer_key string, atm_rate double, spend double, "
                                       "truth int")


def test_caps_hold_outliers_and_kmeans_recovers_the_groups(two_groups):
    bounds = cap_bounds(two_groups, features=["atm_rate", "spend"], log_features=["spend"],
                        quantiles=[0.0, 0.95], error=0.0)
    assert bounds["spend"][1] < np.log1p(1e9)
    model = clustering_pipeline(bounds, ["spend"], k=2, seed=1, max_iter=10).fit(two_groups)
    scored = model.transform(two_groups)
    top = scored.where("customer_key = 'outlier'").select(capped("spend")).first()[0]
    assert top == pytest.approx(bounds["spend"][1])
    assert metrics.adjusted_rand_index(metrics.contingency(scored, "cluster", "truth")) == 1.0
    profile = centroids(model, ["atm_rate", "spend"])
    # z-scores: the cash group sits above the mean on atm_rate, the other below
    assert sorted(np.sign(profile["atm_rate"]).tolist()) == [-1.0, 1.0]


def test_bisecting_splits_too(two_groups):
    bounds = {"atm_rate": None, "spend": None}
    model = clustering_pipeline(bounds, ["spend"], k=2, seed=1, max_iter=10,
                                algorithm="bisecting").fit(two_groups)
    scored = model.transform(two_groups).where("customer_key != 'outlier'")
    assert metrics.adjusted_rand_index(metrics.contingency(scored, "cluster", "truth")) == 1.0

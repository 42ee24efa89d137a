"""Segmentation: capping, two well-separated clusters found, names from centroid profiles."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cardlake.ml import metrics
from cardlake.ml.segmentation import (
    behaviour_features,
    cap_bounds,
    capped,
    centroids,
    clustering_pipeline,
    fit_restarts,
    name_segments,
)


def test_names_follow_the_profile_rules():
    profile = pd.DataFrame(
        {
            "atm_rate": [2.0, -0.5, -0.4],
            "online_rate": [-1.0, 1.5, -0.2],
            "cross_border_rate": [0.0, 0.1, 2.2],
        },
        index=pd.Index([0, 1, 2], name="cluster"),
    )
    rules = {
        "cash_heavy": {"atm_rate": 1.0},
        "digital": {"online_rate": 1.0},
        "travellers": {"cross_border_rate": 1.0},
        "unused": {"atm_rate": 0.1},
    }
    assert name_segments(profile, rules) == {0: "cash_heavy", 1: "digital", 2: "travellers"}


def test_clusters_left_over_are_mixed():
    profile = pd.DataFrame({"atm_rate": [1.0, -1.0]}, index=[0, 1])
    assert name_segments(profile, {"cash": {"atm_rate": 1.0}}) == {0: "cash", 1: "mixed_1"}


@pytest.fixture
def two_groups(spark):
    rng = np.random.default_rng(3)
    rows = [
        (
            f"c{i}",
            float(rng.normal(0.8 if i % 2 else 0.1, 0.03)),
            float(rng.normal(1000 if i % 2 else 20, 5)),
            i % 2,
        )
        for i in range(80)
    ]
    rows.append(("outlier", 0.1, 1e9, 0))  # capped, so it cannot pull a centre of its own
    return spark.createDataFrame(
        rows, "customer_key string, atm_rate double, spend double, truth int"
    )


def test_caps_hold_outliers_and_kmeans_recovers_the_groups(two_groups):
    bounds = cap_bounds(
        two_groups,
        features=["atm_rate", "spend"],
        log_features=["spend"],
        quantiles=[0.0, 0.95],
        error=0.0,
    )
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
    model = clustering_pipeline(
        bounds, ["spend"], k=2, seed=1, max_iter=10, algorithm="bisecting"
    ).fit(two_groups)
    scored = model.transform(two_groups).where("customer_key != 'outlier'")
    assert metrics.adjusted_rand_index(metrics.contingency(scored, "cluster", "truth")) == 1.0


def test_names_by_best_total_not_greedily():
    # Greedy would give cluster 0 "a" (3.0) and leave cluster 1 "b" (-1.0): total 2.0.
    # The assignment gives 0 "b" (2.9) and 1 "a" (2.5): total 5.4.
    profile = pd.DataFrame({"x": [3.0, 2.5], "y": [2.9, -1.0]}, index=[0, 1])
    assert name_segments(profile, {"a": {"x": 1.0}, "b": {"y": 1.0}}) == {0: "b", 1: "a"}


TX_SCHEMA = (
    "customer_key string, month string, channel string, state string, "
    "direction string, amount_usd double, is_cross_border boolean, is_night boolean"
)


def test_behaviour_over_a_trailing_window(spark):
    e = float(np.e)
    rows = [
        # c1, January: two ATM withdrawals of e and e^3 (logs 1 and 3), one failed online
        # payment abroad at night
        ("c1", "2024-01", "ATM", "completed", "debit", e, False, False),
        ("c1", "2024-01", "ATM", "completed", "debit", e**3, False, False),
        ("c1", "2024-01", "ONLINE", "failed", "debit", 50.0, True, True),
        # c1, March (no February): one POS payment of e^2 (log 2); a credit top-up
        ("c1", "2024-03", "POS", "completed", "debit", e**2, False, False),
        ("c1", "2024-03", "TOPUP", "completed", "credit", 500.0, False, False),
        # c2, January: one crypto purchase (log 0), and a row without a customer
        ("c2", "2024-01", "CRYPTO", "completed", "debit", 1.0, True, False),
        (None, "2024-01", "POS", "completed", "debit", 9.0, False, False),
    ]
    df = spark.createDataFrame(rows, TX_SCHEMA)
    got = {
        (r["customer_key"], r["month"]): r.asDict()
        for r in behaviour_features(df, window_months=3).collect()
    }
    assert set(got) == {("c1", "2024-01"), ("c1", "2024-03"), ("c2", "2024-01")}
    jan = got[("c1", "2024-01")]
    assert jan["tx_per_month"] == 3.0
    assert (jan["atm_share"], jan["online_share"], jan["pos_share"]) == pytest.approx(
        (2 / 3, 1 / 3, 0.0)
    )
    assert (jan["cross_border_share"], jan["night_share"]) == pytest.approx((1 / 3, 1 / 3))
    assert jan["log_amount_mean"] == pytest.approx(2.0)
    assert jan["log_amount_sd"] == pytest.approx(np.sqrt(2.0))  # sample sd of 1 and 3
    # March's window is January..March: 5 transactions over the 2 months with any
    mar = got[("c1", "2024-03")]
    assert mar["tx_per_month"] == 2.5
    assert (mar["atm_share"], mar["pos_share"], mar["transfer_share"]) == pytest.approx(
        (0.4, 0.2, 0.2)
    )
    assert mar["log_amount_mean"] == pytest.approx(2.0)  # logs 1, 3 and 2
    assert mar["log_amount_sd"] == pytest.approx(1.0)
    c2 = got[("c2", "2024-01")]
    assert (c2["invest_share"], c2["log_amount_mean"], c2["log_amount_sd"]) == (1.0, 0.0, 0.0)
    # a window of one month forgets January by March
    short = (
        behaviour_features(df, window_months=1)
        .where("customer_key = 'c1' and month = '2024-03'")
        .first()
    )
    assert (short["tx_per_month"], short["atm_share"]) == (2.0, 0.0)


@pytest.fixture(scope="module")
def three_groups(spark):
    rng = np.random.default_rng(5)
    centres = [(0.9, 0.05), (0.1, 0.8), (0.1, 0.1)]
    rows = [
        (
            f"c{i:03d}",
            "2024-01",
            float(rng.normal(centres[i % 3][0], 0.04)),
            float(rng.normal(centres[i % 3][1], 0.04)),
            i % 3,
        )
        for i in range(90)
    ]
    return spark.createDataFrame(
        rows,
        "customer_key string, month string, atm_share double, cross_border_share double, truth int",
    )


def test_restarts_keep_the_lowest_cost_and_repeat_exactly(three_groups):
    bounds = {"atm_share": None, "cross_border_share": None}
    model, costs = fit_restarts(three_groups, bounds, [], k=3, seed=7, restarts=3, max_iter=10)
    assert len(costs) == 3
    assert model.stages[-1].summary.trainingCost == pytest.approx(min(costs))
    scored = model.transform(three_groups)
    assert metrics.adjusted_rand_index(metrics.contingency(scored, "cluster", "truth")) == 1.0
    again, costs_again = fit_restarts(
        three_groups, bounds, [], k=3, seed=7, restarts=3, max_iter=10
    )
    assert costs_again == costs
    first = {r["customer_key"]: r["cluster"] for r in scored.collect()}
    second = {r["customer_key"]: r["cluster"] for r in again.transform(three_groups).collect()}
    assert first == second
    profile = centroids(model, ["atm_share", "cross_border_share"])
    names = name_segments(
        profile,
        {
            "cash_heavy": {"atm_share": 1.0},
            "cross_border_lifestyle": {"cross_border_share": 1.0},
            "stable_essentials": {"atm_share": -1.0, "cross_border_share": -1.0},
        },
    )
    by_truth = {t: names[first[f"c{i:03d}"]] for i, t in [(0, 0), (1, 1), (2, 2)]}
    assert by_truth == {0: "cash_heavy", 1: "cross_border_lifestyle", 2: "stable_essentials"}

"""Ranking metrics against values computed by hand on tiny inputs."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from cardlake.ml import metrics
from cardlake.ml.fraud import choose_threshold

# positives at 0.9, 0.7, 0.6; negatives at 0.8, 0.5, 0.4; a null score is ignored
ROWS = [(0.9, 1), (0.8, 0), (0.7, 1), (0.6, 1), (0.5, 0), (0.4, 0), (None, 1)]


@pytest.fixture
def curve(spark):
    df = spark.createDataFrame(ROWS, "score double, label int")
    return metrics.score_curve(df)


def test_auc_counts_ordered_pairs(curve):
    # 0.9 beats 3 negatives, 0.7 and 0.6 beat 2 each: 7 of 9 pairs
    assert metrics.auc(curve) == pytest.approx(7 / 9)


def test_ks_is_largest_tpr_fpr_gap(curve):
    # after 0.6: TPR 3/3, FPR 1/3
    assert metrics.ks(curve) == pytest.approx(2 / 3)


def test_average_precision(curve):
    # precision at each positive: 1/1, 2/3, 3/4; each adds 1/3 recall
    assert metrics.average_precision(curve) == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)


def test_gains_and_lift(curve):
    table = metrics.gains_table(curve, (0.5, 1.0))
    # top half (0.9, 0.8, 0.7) holds 2 of 3 positives
    assert table["gain"].tolist() == pytest.approx([2 / 3, 1.0])
    assert table["lift"].tolist() == pytest.approx([4 / 3, 1.0])


def test_tied_scores_count_half(spark):
    df = spark.createDataFrame([(0.5, 1), (0.5, 0), (0.2, 0)], "score double, label int")
    assert metrics.auc(metrics.score_curve(df)) == pytest.approx(0.75)


def test_one_class_has_no_auc():
    curve = metrics.curve_from_arrays(np.array([0.3]), np.array([2]), np.array([0]))
    assert np.isnan(metrics.auc(curve))


def test_adjusted_rand_index_by_hand():
    # a = [0,0,1,1], b = [0,0,1,2]: index 1, rows 2, cols 1, 6 pairs -> (1-1/3)/(3/2-1/3) = 4/7
    assert metrics.adjusted_rand_index(np.array([[2, 0, 0], [0, 1, 1]])) == pytest.approx(4 / 7)
    assert metrics.adjusted_rand_index(np.array([[3, 0], [0, 2]])) == pytest.approx(1.0)


def test_card_precision_at_k(spark):
    d1, d2 = dt.date(2024, 1, 1), dt.date(2024, 1, 2)
    df = spark.createDataFrame(
        [
            ("A", d1, 0.9, 1),
            ("A", d1, 0.2, 0),
            ("B", d1, 0.8, 0),
            ("C", d1, 0.1, 1),
            ("A", d2, 0.7, 1),
            ("B", d2, 0.6, 1),
            ("C", d2, None, 0),
        ],
        "instrument_id string, txn_date date, score double, label int",
    )
    # day 1: top 2 cards A (fraud), B (not) -> 1/2; day 2: A, B both fraud -> 1
    assert metrics.card_precision_at_k(df, k=2) == pytest.approx(0.75)


def test_threshold_by_precision_and_by_cost(curve):
    # precision by threshold: 0.9 -> 1, 0.8 -> 1/2, 0.7 -> 2/3, 0.6 -> 3/4, 0.5 -> 3/5
    assert choose_threshold(
        curve, rule="precision", precision_target=0.7, cost_fn=1, cost_fp=1
    ) == pytest.approx(0.6)
    # cost 10 per missed fraud, 1 per false alert: alerting down to 0.6 costs 1, the minimum
    assert choose_threshold(
        curve, rule="cost", precision_target=0, cost_fn=10, cost_fp=1
    ) == pytest.approx(0.6)
    # false alerts dear: only the top transaction (cost 2 * 10 = 20 < 1 * 30 + ...)
    assert choose_threshold(
        curve, rule="cost", precision_target=0, cost_fn=10, cost_fp=30
    ) == pytest.approx(0.9)


def test_pair_counts_and_their_contingency_table(spark):
    df = spark.createDataFrame(
        [(0, "a"), (0, "a"), (0, "b"), (1, "b"), (None, "b")], "km int, bi string"
    )
    pairs = metrics.pair_counts(df, "km", "bi")
    got = {(None if pd.isna(r.km) else int(r.km), r.bi): int(r.count) for r in pairs.itertuples()}
    assert got == {(0, "a"): 2, (0, "b"): 1, (1, "b"): 1, (None, "b"): 1}
    known = pairs[pairs["km"].notna()]
    assert metrics.contingency_of(known, "km", "bi").tolist() == [[2, 1], [0, 1]]

"""Engagement rule, the M+2 target (checked for leakage) and the time splits."""

from __future__ import annotations

import pandas as pd
import pytest
from pyspark.sql import functions as F

from cardlake.ml.common import month_index, with_time_split
from cardlake.ml.engagement import EngagementRule, rule_from_centroids, with_target, with_trends


def test_rule_cuts_at_centroid_midpoints():
    centres = pd.DataFrame({"eng_count_3m": [2.0, 10.0], "eng_days_3m": [1.0, 9.0]})
    rule = rule_from_centroids(centres, min_dimensions=2)
    assert dict(rule.cuts) == {"eng_count_3m": 6.0, "eng_days_3m": 5.0}


def test_rule_needs_enough_dimensions(spark):
    rule = EngagementRule(cuts={"a": 5.0, "b": 5.0, "c": 5.0}, min_dimensions=2)
    df = spark.createDataFrame(
        [(1, 6.0, 6.0, 0.0), (2, 6.0, 1.0, 1.0), (3, None, 9.0, 9.0)],
        "id int, a double, b double, c double",
    )
    got = {r["id"]: r["engaged"] for r in df.select("id", rule.column().alias("engaged")).collect()}
    assert got == {1: True, 2: False, 3: True}


@pytest.fixture
def months_df(spark):
    # customer A: 6 months, unengaged (x < 5) in 2024-04; B closes after 2024-03
    rows = [("A", f"2024-0{m}", float(m if m != 4 else 0)) for m in range(1, 7)]
    rows += [("B", f"2024-0{m}", float(10 + m)) for m in range(1, 4)]
    df = spark.createDataFrame(rows, "customer_key string, month string, x double")
    return df.withColumn("month_idx", month_index(F.col("month")))


def test_target_reads_month_m_plus_2_only(months_df):
    rule = EngagementRule(cuts={"x": 0.5}, min_dimensions=1)
    last = 2024 * 12 + 5
    out = with_trends(with_target(months_df, rule=rule, lead_months=2, last_index=last), ["x"])
    got = {(r["customer_key"], r["month"]): (r["x"], r["d_x"], r["label"]) for r in out.collect()}
    # A's features are month M's own value and the change since M-1; label from M+2
    assert got[("A", "2024-01")] == (1.0, 0.0, 0)
    assert got[("A", "2024-02")] == (2.0, 1.0, 1)  # 2024-04 unengaged
    assert got[("A", "2024-03")] == (3.0, 1.0, 0)
    assert got[("A", "2024-04")] == (0.0, -3.0, 0)
    assert got[("A", "2024-05")][2] is None  # 2024-07 is past the data
    # B's last row is 2024-03: a missing M+2 row means closed, so unengaged
    assert got[("B", "2024-01")][2] == 0
    assert got[("B", "2024-02")][2] == 1
    assert got[("B", "2024-03")][2] == 1


def test_no_feature_from_after_month_m(months_df):
    rule = EngagementRule(cuts={"x": 0.5}, min_dimensions=1)
    out = with_trends(
        with_target(months_df, rule=rule, lead_months=2, last_index=2024 * 12 + 5), ["x"]
    )
    source = {(r["customer_key"], r["month"]): r["x"] for r in months_df.collect()}
    for r in out.collect():
        # the row's features equal the month's own value and the previous month's difference
        assert r["x"] == source[(r["customer_key"], r["month"])]
        prev = f"2024-0{int(r['month'][-1]) - 1}"
        expected = r["x"] - source.get((r["customer_key"], prev), r["x"])
        assert r["d_x"] == pytest.approx(expected)


def test_time_split(spark):
    rows = [(f"c{i}", m) for i in range(400) for m in range(10)]
    df = spark.createDataFrame(rows, "customer_key string, month_idx int")
    out = with_time_split(df, cutoff_index=5, oot_index=7, score_index=9, train_share=0.8, seed=1)
    by = {
        (r["month_idx"], r["split"]): r["count"]
        for r in out.groupBy("month_idx", "split").count().collect()
    }
    assert {s for (m, s) in by if m <= 5} == {"train", "oos"}
    assert by[(7, "oot")] == 400 and by[(9, "score")] == 400
    assert {s for (m, s) in by if m in (6, 8)} == {"unused"}
    share = sum(v for (m, s), v in by.items() if s == "train") / (6 * 400)
    assert 0.74 < share < 0.86
    # a customer is either train or out-of-sample in every month, never both
    mixed = (
        out.where("split in ('train', 'oos')")
        .groupBy("customer_key")
        .agg(F.countDistinct("split").alias("n"))
        .where("n > 1")
        .count()
    )
    assert mixed == 0

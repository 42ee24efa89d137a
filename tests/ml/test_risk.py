"""Risk scorecard: bins, WoE, points, reason codes and tiers on a hand-made customer; target."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from pyspark.sql import functions as F

from cardlake.ml.common import month_index
from cardlake.ml.risk import (
    points_table,
    tier_cutoffs,
    with_bins,
    with_risk_features,
    with_risk_target,
    with_scorecard,
)
from cardlake.ml.settings import BinSpec

BINS = {
    "fraud_contacts_6m": BinSpec(edges=(1.0,), reason="fraud history"),
    "spend_spike_ratio": BinSpec(edges=(1.5, 3.0), reason="spend spike"),
    "debt_outstanding_usd": BinSpec(edges=(1.0, 5000.0), reason="debt"),
}
# points per bin: fraud 0/40, spike 0/10/25, debt 0/5/30
POINTS = pd.DataFrame(
    {
        "feature": ["fraud_contacts_6m"] * 2
        + ["spend_spike_ratio"] * 3
        + ["debt_outstanding_usd"] * 3,
        "bin": [0, 1, 0, 1, 2, 0, 1, 2],
        "points": [0, 40, 0, 10, 25, 0, 5, 30],
    }
)


def test_reason_codes_are_the_top_adverse_factors(spark):
    df = spark.createDataFrame(
        [
            ("hand", 2.0, 2.0, 9000.0),
            ("clean", 0.0, 1.0, 0.0),
            ("spike", 0.0, 4.0, 100.0),
            ("none", None, None, None),
        ],
        "customer_key string, fraud_contacts_6m double, spend_spike_ratio double, "
        "debt_outstanding_usd double",
    )
    out = with_scorecard(
        with_bins(df, BINS), POINTS, 500, BINS, tiers={"medium": 520, "high": 560}, max_reasons=2
    )
    got = {r["customer_key"]: (r["risk_score"], r["tier"], r["reasons"]) for r in out.collect()}
    # hand: fraud +40, spike bin 1 +10, debt bin 2 +30 -> 580; worst two: fraud (40), debt (30)
    assert got["hand"] == (580, "High", ["fraud history", "debt"])
    assert got["clean"] == (500, "Low", [])
    # spike: spike bin 2 +25, debt bin 1 +5 -> 530
    assert got["spike"] == (530, "Medium", ["spend spike", "debt"])
    assert got["none"][2] == []  # nulls fall in the lowest bin: no adverse factor


def test_tier_cutoffs_take_the_configured_shares_from_the_top(spark):
    scores = spark.createDataFrame([(i,) for i in range(1, 101)], "risk_score int")
    # top 5 of 100 are High (96..100), the next 15 Medium (81..95)
    assert tier_cutoffs(scores, {"high": 0.05, "medium": 0.15}) == {"high": 96.0, "medium": 81.0}
    tied = spark.createDataFrame([(500,)] * 8 + [(540,)] * 2, "risk_score int")
    # 10% would be one customer; both tied at 540 go up together
    assert tier_cutoffs(tied, {"high": 0.1, "medium": 0.1}) == {"high": 540.0, "medium": 540.0}
    with pytest.raises(ValueError, match="tier shares"):
        tier_cutoffs(scores, {"high": 0.8, "medium": 0.5})


def test_points_double_the_odds_every_pdo():
    woe = pd.DataFrame({"feature": ["f", "f"], "bin": [0, 1], "woe": [0.0, math.log(2)]})
    # coefficient 1, intercept ln(0.1): logit at bin 1 is ln(0.2), twice the base odds
    points, base = points_table(
        woe, {"f": 1.0}, math.log(0.1), pdo=20, base_score=500, base_odds=0.1
    )
    assert base == 500
    assert points["points"].tolist() == [0, 20]


def test_target_looks_ahead_only_over_the_horizon(spark):
    rows = [("A", f"2024-0{m}", 1 if m == 4 else 0) for m in range(1, 8)]
    rows += [("B", f"2024-0{m}", 0) for m in range(1, 4)]  # B closes after March
    df = spark.createDataFrame(rows, "customer_key string, month string, fraud_contacts int")
    df = df.withColumn("month_idx", month_index(F.col("month")))
    out = with_risk_target(
        df,
        event_expression="fraud_contacts > 0",
        horizon_months=2,
        closure_is_event=True,
        last_index=2024 * 12 + 6,
    )
    got = {(r["customer_key"], r["month"]): r["label"] for r in out.collect()}
    assert [got[("A", f"2024-0{m}")] for m in range(1, 8)] == [0, 1, 1, 0, 0, None, None]
    # B is seen through March: from February its 2-month window includes a closed month
    assert [got[("B", f"2024-0{m}")] for m in range(1, 4)] == [0, 1, 1]


def test_risk_features_use_past_months_only(spark):
    rows = [
        ("A", f"2024-0{m}", 100.0 * (3 if m == 5 else 1), 1 if m == 2 else 0, 10, 1)
        for m in range(1, 7)
    ]
    df = spark.createDataFrame(
        rows,
        "customer_key string, month string, spend_usd double, "
        "fraud_contacts int, tx_count int, failed_count int",
    )
    df = (
        df.withColumn("service_unresolved", F.lit(0))
        .withColumn("debt_outstanding_usd", F.lit(None).cast("double"))
        .withColumn("credit_score", F.lit(700))
        .withColumn("notification_fail_rate", F.lit(0.0))
        .withColumn("recency_days", F.lit(3))
    )
    got = {r["month"]: r for r in with_risk_features(df).collect()}
    assert got["2024-01"]["fraud_contacts_6m"] == 0
    assert got["2024-02"]["fraud_contacts_6m"] == 1
    assert got["2024-05"]["spend_spike_ratio"] == pytest.approx(3.0)
    assert got["2024-06"]["spend_spike_ratio"] == pytest.approx(100 / (500 / 3))
    assert got["2024-03"]["failed_rate_3m"] == pytest.approx(0.1)
    assert got["2024-03"]["debt_outstanding_usd"] == 0.0

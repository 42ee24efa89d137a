"""The models' gold outputs on the pipeline's lake, checked by content rather than existence:
alerts above their threshold and mostly true frauds, risk tiers ordered and near their configured
shares with reasons from the scorecard's vocabulary, segments covering every customer of every
month, engagement deciles of equal size. Read with plain ``deltalake`` (no Spark) so nothing here
reuses the code that wrote the tables."""

from __future__ import annotations

import glob
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from cardlake.ml.settings import load_ml_settings
from tests.lake_fixture import BuiltLake

pytestmark = pytest.mark.slow


def gold(built: BuiltLake, name: str) -> pd.DataFrame:
    return DeltaTable(str(built.lake_root / "gold" / name)).to_pandas()


@pytest.fixture(scope="module")
def settings(built_lake: BuiltLake):
    return load_ml_settings(built_lake.cfg.env)


def test_alerts_are_above_threshold_and_mostly_true_frauds(built_lake: BuiltLake, settings):
    alerts = gold(built_lake, "fraud_alerts")
    assert len(alerts) >= 5, "too few alerts to say anything"
    assert alerts["transaction_id"].is_unique
    assert (alerts["score"] >= alerts["threshold"]).all()
    assert alerts.groupby("model_version")["threshold"].nunique().eq(1).all()
    assert alerts["reasons"].map(len).between(1, settings.fraud.max_reasons).all()

    facts = gold(built_lake, "fact_transactions").set_index("transaction_id")
    joined = alerts.join(facts[["amount_usd"]], on="transaction_id", rsuffix="_fact", how="left")
    assert joined["amount_usd_fact"].notna().all(), "an alert for a transaction gold lacks"
    assert (joined["amount_usd"] - joined["amount_usd_fact"]).abs().max() < 1e-6

    truth = pd.concat(
        pq.read_table(f).to_pandas()
        for f in glob.glob(
            str(Path(built_lake.truth_root) / "transactions_truth" / "**" / "*.parquet"),
            recursive=True,
        )
    )
    labelled = alerts.merge(truth[["transaction_id", "is_fraud"]], on="transaction_id", how="left")
    assert labelled["is_fraud"].notna().all()
    # The threshold is chosen for this precision on validation; the alerts must deliver it.
    assert labelled["is_fraud"].mean() >= settings.fraud.precision_target


def test_risk_tiers_are_ordered_near_their_shares_with_scorecard_reasons(
    built_lake: BuiltLake, settings
):
    risk = gold(built_lake, "customer_risk")
    features = gold(built_lake, "customer_monthly_features")
    (month,) = risk["month"].unique()
    assert set(risk["customer_key"]) == set(
        features.loc[features["month"] == month, "customer_key"]
    )
    assert risk["customer_key"].is_unique

    by_tier = risk.groupby("tier")["risk_score"].agg(["min", "max"])
    assert by_tier.loc["High", "min"] > by_tier.loc["Medium", "max"]
    assert by_tier.loc["Medium", "min"] > by_tier.loc["Low", "max"]
    # Cut-offs come from the training months' scores, so the scored month lands near, not on,
    # the configured shares.
    shares = risk["tier"].value_counts(normalize=True)
    high, medium = settings.risk.tier_shares["high"], settings.risk.tier_shares["medium"]
    assert high / 2 <= shares["High"] <= high * 2
    assert medium / 2 <= shares["High"] + shares["Medium"] <= medium * 2

    vocabulary = {b.reason for b in settings.risk.bins.values()}
    reasons = risk["reasons"].map(list)
    assert reasons.map(len).le(settings.risk.max_reasons).all()
    assert all(set(r) <= vocabulary for r in reasons)
    assert all(len(set(r)) == len(r) for r in reasons)
    # No adverse factor means every feature at its best points: the lowest score there is.
    assert (risk.loc[reasons.map(len) == 0, "risk_score"] == risk["risk_score"].min()).all()
    assert reasons[risk["tier"] == "High"].map(len).ge(1).all()


def test_segments_cover_every_customer_of_every_month(built_lake: BuiltLake, settings):
    segments = gold(built_lake, "customer_segments")
    features = gold(built_lake, "customer_monthly_features")
    assert not segments.duplicated(["customer_key", "month"]).any()
    expected = set(zip(features["customer_key"], features["month"], strict=True))
    got = set(zip(segments["customer_key"], segments["month"], strict=True))
    assert got == expected
    # A customer-month without behaviour to cluster is "inactive"; every other one carries one
    # of the five promised names.
    inactive = segments["cluster"].isna()
    assert (segments.loc[inactive, "segment"] == "inactive").all()
    assert set(segments.loc[~inactive, "segment"]) == set(settings.segmentation.naming_rules)


def test_engagement_deciles_are_equal_sized_and_follow_the_score(built_lake: BuiltLake):
    scores = gold(built_lake, "engagement_scores")
    assert len(scores) >= 50
    for _, month in scores.groupby("month"):
        month = month.sort_values("score", ascending=False)
        assert list(month["score_rank"]) == list(range(1, len(month) + 1))
        sizes = month["score_decile"].value_counts()
        assert set(sizes.index) == set(range(1, 11))
        assert sizes.max() - sizes.min() <= 1
        assert month["score_decile"].is_monotonic_increasing

"""Cross-sell propensity: holdings and responses, gains against random targeting and campaign
targets on hand-made rows; the model's gains and its bound on the shared built lake."""

from __future__ import annotations

import math

import mlflow
import numpy as np
import pytest
from chispa import assert_approx_df_equality
from pyspark.sql import functions as F

from cardlake.ml import metrics
from cardlake.ml.propensity import campaign_targets, gains_frame, with_product_months


def test_gains_against_random_by_hand():
    # 5 rows by score: positive, positive, negative, positive, negative (3 positives)
    curve = metrics.curve_from_arrays(
        np.array([0.9, 0.8, 0.7, 0.6, 0.5]), np.array([1, 1, 0, 1, 0]), np.array([0, 0, 1, 0, 1])
    )
    table = gains_frame({"model": curve}, points=(0.2, 0.4, 0.6, 1.0))
    model = table[table["ranking"] == "model"]
    # top 20% (1 row) holds 1 of 3 positives, top 40% 2, top 60% 2, everyone 3
    assert model["gain"].tolist() == pytest.approx([1 / 3, 2 / 3, 2 / 3, 1.0])
    assert model["lift"].tolist() == pytest.approx([5 / 3, 5 / 3, 10 / 9, 1.0])
    rand = table[table["ranking"] == "random"]
    assert rand["gain"].tolist() == [0.2, 0.4, 0.6, 1.0]
    assert rand["lift"].tolist() == [1.0] * 4


def test_held_products_and_response_look_back_and_ahead(spark):
    features = spark.createDataFrame(
        [("c1", m) for m in ("2024-01", "2024-02", "2024-03", "2024-04", "2024-05")],
        "customer_key string, month string",
    )
    usage = spark.createDataFrame(
        [
            ("c1", "2024-01", "wallet", 3),
            ("c1", "2024-04", "fx", 1),
            ("c1", "2024-04", "tarot", 9),  # not a product of the model: ignored
            (None, "2024-02", "fx", 5),
        ],  # an app user resolved to no customer: ignored
        "customer_key string, month string, product string, sessions int",
    )
    # 2024-05 is month index 24292 (2024 * 12 + 4)
    out = with_product_months(
        features,
        usage,
        products=["wallet", "fx"],
        lookback_months=2,
        horizon_months=1,
        last_index=2024 * 12 + 4,
    )
    got = {
        (r["month"], r["product"]): (
            r["held"],
            r["label"],
            r["held_wallet"],
            r["held_fx"],
            r["products_held"],
        )
        for r in out.collect()
    }
    assert got == {
        # wallet used in January: held in January and February (2-month look-back)
        ("2024-01", "wallet"): (1, 0, 1.0, 0.0, 1.0),
        ("2024-01", "fx"): (0, 0, 1.0, 0.0, 1.0),
        ("2024-02", "wallet"): (1, 0, 1.0, 0.0, 1.0),
        ("2024-02", "fx"): (0, 0, 1.0, 0.0, 1.0),
        # fx taken up in April: March's response is 1
        ("2024-03", "wallet"): (0, 0, 0.0, 0.0, 0.0),
        ("2024-03", "fx"): (0, 1, 0.0, 0.0, 0.0),
        ("2024-04", "wallet"): (0, 0, 0.0, 1.0, 1.0),
        ("2024-04", "fx"): (1, 0, 0.0, 1.0, 1.0),
        # May is the last month: nothing to look ahead to
        ("2024-05", "wallet"): (0, None, 0.0, 1.0, 1.0),
        ("2024-05", "fx"): (1, None, 0.0, 1.0, 1.0),
    }


def test_campaign_targets_rank_segments_by_expected_response(spark):
    scored = spark.createDataFrame(
        [
            ("a", "fx", "travellers", 0.6),
            ("b", "fx", "travellers", 0.4),
            ("c", "fx", "savers", 0.1),
            ("d", "fx", "unsegmented", None),
            ("a", "savings", "travellers", 0.2),
            ("c", "savings", "savers", 0.5),
            ("e", "crypto", "savers", 0.9),
        ],  # no campaign offers crypto
        "customer_key string, product string, segment string, propensity double",
    ).withColumn("month", F.lit("2025-06"))
    out = campaign_targets(scored, campaigns={"travel_promo": "fx", "savings_drive": "savings"})
    expected = spark.createDataFrame(
        [
            # fx: 3 customers with a propensity expect 1.1 responders of 4 eligible; travellers
            # 1.0 of 2 = 0.5 against 1.1 / 4 = 0.275 overall: lift 0.5 / 0.275
            ("travel_promo", "fx", "travellers", 2, 1.0, 0.5, 0.5 / 0.275, 1, "2025-06"),
            ("travel_promo", "fx", "savers", 1, 0.1, 0.1, 0.1 / 0.275, 2, "2025-06"),
            # a customer without a score counts as eligible with an unknown rate: ranked last
            ("travel_promo", "fx", "unsegmented", 1, None, None, None, 3, "2025-06"),
            ("savings_drive", "savings", "savers", 1, 0.5, 0.5, 0.5 / 0.35, 1, "2025-06"),
            ("savings_drive", "savings", "travellers", 1, 0.2, 0.2, 0.2 / 0.35, 2, "2025-06"),
        ],
        "campaign string, product string, segment string, eligible_customers long, "
        "expected_responders double, expected_response_rate double, lift double, "
        "segment_rank int, month string",
    )
    assert_approx_df_equality(out, expected, 1e-9, ignore_row_order=True, ignore_nullable=True)


LIFT_MARGIN = 1.5  # the chosen model's top-10% lift out of time must be at least this


def test_propensity_beats_random_targeting_and_stays_under_its_bound(built_lake):
    from cardlake.ml.settings import load_ml_settings
    from cardlake.tracking import tracking_uri

    ml_uri = tracking_uri(str(built_lake.lake_root), load_ml_settings("test").tracking)
    client = mlflow.tracking.MlflowClient(tracking_uri=ml_uri)
    experiment = client.get_experiment_by_name("cardlake-propensity")
    assert experiment is not None
    run = client.search_runs([experiment.experiment_id], order_by=["start_time DESC"])[0]
    m = run.data.metrics
    print(
        f"propensity out of time: lr AUC {m['lr_oot_auc']:.3f} lift@10 {m['lr_oot_lift_10']:.2f}"
        f", gbt AUC {m['gbt_oot_auc']:.3f} lift@10 {m['gbt_oot_lift_10']:.2f}; chosen on "
        f"truth rows AUC {m['truth_auc']:.3f} vs best achievable "
        f"{m['best_achievable_auc']:.3f}, oracle lift@10 {m['best_achievable_lift_10']:.2f}"
    )
    best_lift = max(m["lr_oot_lift_10"], m["gbt_oot_lift_10"])
    assert best_lift >= LIFT_MARGIN  # random targeting has lift 1
    assert m["truth_auc"] > 0.6
    # the generator's own probability ranks at least as well (a little slack for sampling)
    assert m["truth_auc"] <= m["best_achievable_auc"] + 0.02
    assert not math.isnan(m["best_achievable_lift_10"])

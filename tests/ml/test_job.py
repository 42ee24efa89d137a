"""The whole ML stage on small synthetic gold features and silver transactions."""

from __future__ import annotations

import mlflow
import pytest

from cardlake.ml import run_all
from tests.ml import fakes


@pytest.mark.slow
def test_run_all_trains_registers_and_writes_gold(spark, cfg, rs_tables, tmp_path):
    from cardlake.config import load_config

    lake_cfg = load_config("test", overrides={
        "paths.lake_root": rs_tables.lake_root, "paths.truth_root": str(tmp_path / "no-truth"),
        "paths.landing_root": str(tmp_path / "landing")})
    rs_tables.overwrite("gold.customer_monthly_features", fakes.features_df(spark),
                        partition_by=["month"])
    rs_tables.overwrite("silver.transactions", fakes.transactions_df(spark),
                        partition_by=["month"])
    # Segmentation reads behaviour from gold's fact table; the silver columns it uses are the same.
    rs_tables.overwrite("gold.fact_transactions", fakes.transactions_df(spark),
                        partition_by=["month"])
    previous = mlflow.get_tracking_uri()
    try:
        # Propensity needs gold.fact_product_usage, which the fakes do not hold: the built
        # lake's test (tests/ml/test_propensity.py) covers it.
        only = ["segmentation", "engagement", "fraud", "risk"]
        results = run_all(spark, lake_cfg, tables=rs_tables, only=only)
        # Run again: an unsupervised and a supervised model, not all four (that took 2.5 of
        # the test's 5 minutes); engagement and risk fit through fraud's fit_classifier.
        again = run_all(spark, lake_cfg, tables=rs_tables, only=["segmentation", "fraud"])
    finally:
        mlflow.set_tracking_uri(previous)
    # Seeds everywhere: the same data gives the same metrics (timings and the promotion
    # decision aside: the second model meets a champion the first did not).
    assert set(again) == {"segmentation", "fraud"}
    for model in again:
        metrics = results[model]
        varying = {k for k in metrics if k.endswith("seconds") or k == "promoted"}
        assert set(metrics) == set(again[model]), model
        for name in sorted(set(metrics) - varying):
            assert again[model][name] == pytest.approx(metrics[name], rel=1e-9, abs=1e-12), (
                model, name)
        assert again[model]["promoted"] == 0.0, model  # not better than itself
    assert set(results) == {"segmentation", "engagement", "fraud", "risk"}
    for table in ("customer_segments", "engagement_scores", "experiment_assignment",
                  "fraud_alerts", "customer_risk"):
        assert rs_tables.exists(f"gold.{table}"), table
    assert results["engagement"]["gbt_oot_auc"] > 0.7
    assert results["fraud"]["gbt_test_auc"] > 0.8

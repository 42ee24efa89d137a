"""MLflow glue on a real SQLite store: runs with params, data versions and a logged model,
registration with aliases, and the promotion rule (a worse challenger is not promoted)."""

from __future__ import annotations

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from pyspark.ml import Pipeline
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.feature import VectorAssembler

from cardlake.ml import tracking


@pytest.mark.slow
def test_register_alias_and_promotion_rule(spark, tracker, tmp_path):
    assert tracker.uri == f"sqlite:///{tmp_path}/lake/_ops/mlflow.db"
    df = spark.createDataFrame([(0.0, 0), (1.0, 1), (0.2, 0), (0.9, 1)], "x double, label int")
    model = Pipeline(
        stages=[
            VectorAssembler(inputCols=["x"], outputCol="features"),
            LogisticRegression(maxIter=5),
        ]
    ).fit(df)
    promotions = []
    for value in (0.80, 0.75, 0.85):  # first, worse, better
        with tracker.run("unit", f"run-{value}") as run:
            tracking.log_params({"grid": {"reg_param": (0.1, 0.01)}, "seed": 1})
            tracking.log_data_versions({"gold.customer_monthly_features": 3})
            tracking.log_metrics({"oot_auc": value, "nan_is_skipped": float("nan")})
            uri = tracking.log_spark_model(
                model, pd.DataFrame({"x": [0.5]}), pd.DataFrame({"score": [0.5]})
            )
            promotions.append(
                tracking.register_and_promote(
                    tracker,
                    name="unit-model",
                    model_uri=uri,
                    metric="oot_auc",
                    value=value,
                    tags={"threshold": "0.5"},
                )
            )
    assert [p.promoted for p in promotions] == [True, False, True]
    assert promotions[1].champion_version == "1" and promotions[1].champion_value == 0.80
    client = MlflowClient(tracking_uri=tracker.uri)
    assert str(client.get_model_version_by_alias("unit-model", "champion").version) == "3"
    assert str(client.get_model_version_by_alias("unit-model", "challenger").version) == "3"
    assert tracking.version_tags(tracker, "unit-model", "2")["threshold"] == "0.5"
    logged = client.get_run(run.info.run_id).data
    assert logged.params["data.gold.customer_monthly_features.version"] == "3"
    assert logged.params["grid.reg_param"] == "[0.1, 0.01]"
    assert "nan_is_skipped" not in logged.metrics
    champion, version = tracking.load_champion("unit-model")
    assert version == "3"
    assert champion.transform(df).count() == 4


def test_a_promoted_fit_scores_as_it_is_and_a_kept_champion_is_loaded(monkeypatch):
    import dataclasses

    from cardlake.ml import common

    loads: list[str] = []
    monkeypatch.setattr(
        common.tracking,
        "load_champion",
        lambda name: (loads.append(name), ("the loaded champion", "6"))[1],
    )
    fitted = object()  # stands for the fitted pipeline in hand
    promoted = tracking.Promotion(
        name="unit-model",
        version="7",
        metric="auc",
        value=0.9,
        champion_version="6",
        champion_value=0.8,
        promoted=True,
    )
    assert common.champion_for_scoring(promoted, fitted) == (fitted, "7")
    assert loads == []  # not read back from the registry
    kept = dataclasses.replace(promoted, value=0.7, promoted=False)
    assert common.champion_for_scoring(kept, fitted) == ("the loaded champion", "6")
    assert loads == ["unit-model"]

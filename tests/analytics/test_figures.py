"""The analysts' figures against the generator's truth on the pipeline's lake (``built_lake``):
segments against the hidden archetypes, note topics against the true topics; printed, and
asserted at the goals of issue 15."""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F

from cardlake.ml import evaluate
from cardlake.ml.segmentation import (
    behaviour_features,
    cap_bounds,
    fit_restarts,
    training_rows,
)
from cardlake.ml.settings import load_ml_settings
from tests.analytics import figures
from tests.analytics.figures import ARI_GOAL, TOPIC_ACCURACY_GOAL

pytestmark = [pytest.mark.slow]


def test_segments_match_the_archetypes(spark, built_lake):
    tables = built_lake.tables(spark)
    found = figures.segments_against_archetypes(spark, built_lake.cfg, tables)
    assert found["archetype_ari"] >= ARI_GOAL
    assert set(evaluate.SEGMENT_ARCHETYPE) <= figures.segment_names(tables)


def test_two_fits_on_the_same_data_give_the_same_segments(spark, built_lake):
    tables = built_lake.tables(spark)
    s = load_ml_settings("test").segmentation
    behaviour = behaviour_features(
        tables.read("gold.fact_transactions"), window_months=s.window_months
    )
    rows = training_rows(
        tables.read("gold.customer_monthly_features"), behaviour, features=s.features
    ).cache()
    bounds = cap_bounds(
        rows,
        features=s.features,
        log_features=s.log_features,
        quantiles=s.cap_quantiles,
        error=s.quantile_error,
    )

    def assignment():
        model, _ = fit_restarts(
            rows, bounds, s.log_features, k=s.k, seed=11, restarts=2, max_iter=s.max_iter
        )
        return model.transform(rows).select("customer_key", "month", "cluster")

    first, second = assignment(), assignment()
    differ = first.join(
        second.withColumnRenamed("cluster", "again"), on=["customer_key", "month"], how="full_outer"
    ).where(~F.col("cluster").eqNullSafe(F.col("again")))
    assert differ.count() == 0
    rows.unpersist()


def test_note_topics_beat_the_agents_category(spark, built_lake):
    found = figures.note_topics_against_truth(spark, built_lake.cfg, built_lake.tables(spark))
    assert found["topic_accuracy"] >= TOPIC_ACCURACY_GOAL
    assert found["topic_accuracy"] > found["agent_topic_accuracy"]

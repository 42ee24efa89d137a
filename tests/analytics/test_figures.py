"""The analysts' figures against the generator's truth on the pipeline's lake (``built_lake``):
segments against the hidden archetypes, note topics against the true topics; printed, and
asserted at the goals of issue 15."""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F

from cardlake.ml import evaluate, text
from cardlake.ml.segmentation import (
    behaviour_features,
    cap_bounds,
    fit_restarts,
    training_rows,
)
from cardlake.ml.settings import load_ml_settings

pytestmark = [pytest.mark.slow]

ARI_GOAL = 0.8
TOPIC_ACCURACY_GOAL = 0.9


def test_segments_match_the_archetypes(spark, built_lake):
    tables = built_lake.tables(spark)
    found = evaluate.archetype_agreement(
        spark, built_lake.cfg, tables=tables, segments_df=tables.read("gold.customer_segments")
    )
    assert found is not None, "the built lake's truth is missing"
    print(
        f"\nsegments vs archetypes: ARI {found['archetype_ari']:.3f}, named right "
        f"{found['archetype_name_accuracy']:.3f} of {found['archetype_customers']:.0f}"
    )
    assert found["archetype_ari"] >= ARI_GOAL
    names = {
        r[0] for r in tables.read("gold.segment_monthly").select("segment").distinct().collect()
    }
    assert set(evaluate.SEGMENT_ARCHETYPE) <= names


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
    tables = built_lake.tables(spark)
    notes = tables.read(text.OUTPUT_TABLE)
    months = sorted(r[0] for r in notes.select("month").distinct().collect())
    s = load_ml_settings("test").text
    found = text.evaluate_against_truth(
        spark, built_lake.cfg, tables=tables, notes_df=notes, test_from=months[-s.test_months]
    )
    assert found is not None, "the built lake's truth is missing"
    figures, _ = found
    print("\nnotes vs truth: " + ", ".join(f"{k} {v:.3f}" for k, v in sorted(figures.items())))
    assert figures["topic_accuracy"] >= TOPIC_ACCURACY_GOAL
    assert figures["topic_accuracy"] > figures["agent_topic_accuracy"]

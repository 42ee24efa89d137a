"""The analysts' figures against the generator's truth (issue 15), read from a finished lake:
one definition for the test lake (``built_lake``) and the default data (``make run``'s world)."""

from __future__ import annotations

import mlflow
from mlflow.tracking import MlflowClient
from pyspark.sql import SparkSession

from cardlake.analytics import clv
from cardlake.config import Config
from cardlake.ml import evaluate, text, tracking
from cardlake.ml.settings import load_ml_settings
from cardlake.tables import Tables

ARI_GOAL = 0.8
TOPIC_ACCURACY_GOAL = 0.9


def segments_against_archetypes(spark: SparkSession, cfg: Config, tables: Tables) -> dict:
    """Adjusted Rand index and naming accuracy of ``gold.customer_segments``, printed."""
    found = evaluate.archetype_agreement(
        spark, cfg, tables=tables, segments_df=tables.read("gold.customer_segments")
    )
    assert found is not None, f"no archetype truth under {cfg.paths.truth_root}"
    print(
        f"\nsegments vs archetypes: ARI {found['archetype_ari']:.3f}, named right "
        f"{found['archetype_name_accuracy']:.3f} of {found['archetype_customers']:.0f}"
    )
    return found


def segment_names(tables: Tables) -> set[str]:
    """The segment names ``gold.segment_monthly`` holds."""
    df = tables.read("gold.segment_monthly").select("segment").distinct()
    return {r[0] for r in df.collect()}


def note_topics_against_truth(spark: SparkSession, cfg: Config, tables: Tables) -> dict:
    """Topic and sentiment accuracy of the text model's test months, and the agents', printed."""
    notes = tables.read(text.OUTPUT_TABLE)
    months = sorted(r[0] for r in notes.select("month").distinct().collect())
    s = load_ml_settings(cfg.env).text
    found = text.evaluate_against_truth(
        spark, cfg, tables=tables, notes_df=notes, test_from=months[-s.test_months]
    )
    assert found is not None, f"no note truth under {cfg.paths.truth_root}"
    figures, _ = found
    print("\nnotes vs truth: " + ", ".join(f"{k} {v:.3f}" for k, v in sorted(figures.items())))
    return figures


def clv_holdout(cfg: Config, tables: Tables) -> dict[str, float]:
    """The metrics the pipeline's CLV run logged (its holdout against the naive estimate)."""
    run_id = tables.read(clv.OUTPUT_TABLE).select("model_run_id").first()[0]
    previous = mlflow.get_tracking_uri()
    try:
        tracking.Tracker.configure(cfg.paths.lake_root, load_ml_settings(cfg.env).tracking)
        metrics = MlflowClient().get_run(run_id).data.metrics
    finally:
        mlflow.set_tracking_uri(previous)
    print(
        f"\nCLV holdout: MAE model {metrics['model_mae_usd']:.0f} vs naive "
        f"{metrics['naive_mae_usd']:.0f} USD; total error model "
        f"{metrics['model_total_error_pct']:+.1f}% vs naive "
        f"{metrics['naive_total_error_pct']:+.1f}%"
    )
    return metrics

"""Evaluation against the generator's ground truth (``cfg.paths.truth_root``).

Only evaluation reads the truth, and only after a model is trained and its scores written:
nothing here feeds a feature or a label. Every function returns None when the truth (or the
entity-resolution crosswalk that maps customers to persons) is not on disk.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from cardlake.ml import metrics

log = logging.getLogger("cardlake.ml")


def _truth(spark: Any, cfg: Any, table: str) -> DataFrame | None:
    path = f"{cfg.paths.truth_root.rstrip('/')}/{table}"
    if "://" not in path and not Path(path).exists():
        log.info("truth %s not found at %s; skipping that evaluation", table, path)
        return None
    return spark.read.parquet(path)


def customer_persons(spark: Any, cfg: Any, *, tables: Any) -> DataFrame | None:
    """customer_key to the person most of its current source records belong to."""
    keys = _truth(spark, cfg, "source_keys")
    if keys is None or not tables.exists("silver.crosswalk"):
        return None
    crosswalk = tables.read("silver.crosswalk").where(F.col("is_current"))
    votes = (
        crosswalk.join(keys, crosswalk["source_record_id"] == keys["key_value"], how="inner")
        .groupBy("customer_key", "person_id").count()
    )
    ranked = votes.withColumn("rank", F.row_number().over(
        Window.partitionBy("customer_key").orderBy(F.desc("count"), F.col("person_id"))))
    return ranked.where(F.col("rank") == 1).select("customer_key", "person_id")


def archetype_ari(spark: Any, cfg: Any, *, tables: Any, segments_df: DataFrame) -> float | None:
    """ARI between each customer's most frequent active segment and their true archetype."""
    persons = customer_persons(spark, cfg, tables=tables)
    archetypes = _truth(spark, cfg, "archetypes")
    if persons is None or archetypes is None:
        return None
    modal = (
        segments_df.where(F.col("cluster").isNotNull())
        .groupBy("customer_key", "segment").count()
        .withColumn("rank", F.row_number().over(
            Window.partitionBy("customer_key").orderBy(F.desc("count"), F.col("segment"))))
        .where(F.col("rank") == 1)
    )
    labelled = modal.join(persons, on="customer_key", how="inner").join(
        archetypes, on="person_id", how="inner")
    return metrics.adjusted_rand_index(metrics.contingency(labelled, "segment", "archetype"))


def fraud_against_truth(spark: Any, cfg: Any, *, scored_df: DataFrame) -> dict[str, float] | None:
    """The model's AUC and average precision against the true fraud flag, next to the best
    achievable: those of the generator's own fraud probability on the same rows."""
    truth = _truth(spark, cfg, "transactions_truth")
    if truth is None:
        return None
    joined = scored_df.select("transaction_id", "score").join(
        truth.select("transaction_id", "fraud_probability",
                     F.col("is_fraud").cast("int").alias("label")),
        on="transaction_id", how="inner").cache()
    model_curve = metrics.score_curve(joined)
    best_curve = metrics.score_curve(joined, score_col="fraud_probability")
    out = {
        "truth_rows": float(joined.count()),
        "truth_auc": metrics.auc(model_curve),
        "truth_ap": metrics.average_precision(model_curve),
        "best_achievable_auc": metrics.auc(best_curve),
        "best_achievable_ap": metrics.average_precision(best_curve),
    }
    joined.unpersist()
    out["auc_gap_to_best"] = out["best_achievable_auc"] - out["truth_auc"]
    return out

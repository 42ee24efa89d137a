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


SEGMENT_ARCHETYPE = {
    "digital_spenders": "digital_spender",
    "stable_essentials": "stable_essentials",
    "cash_heavy": "cash_heavy",
    "high_volatility": "high_volatility",
    "cross_border_lifestyle": "cross_border_lifestyle",
}
"""The segment name the platform promises for each of the generator's archetypes."""


def modal_segments(segments_df: DataFrame) -> DataFrame:
    """Each customer's most frequent segment over their active months (ties by name)."""
    return (
        segments_df.where(F.col("cluster").isNotNull())
        .groupBy("customer_key", "segment").count()
        .withColumn("rank", F.row_number().over(
            Window.partitionBy("customer_key").orderBy(F.desc("count"), F.col("segment"))))
        .where(F.col("rank") == 1)
        .select("customer_key", "segment")
    )


def archetype_agreement(spark: Any, cfg: Any, *, tables: Any, segments_df: DataFrame
                        ) -> dict[str, float] | None:
    """The adjusted Rand index between each customer's most frequent active segment and their
    true archetype, and the share of customers whose segment has their archetype's name."""
    persons = customer_persons(spark, cfg, tables=tables)
    archetypes = _truth(spark, cfg, "archetypes")
    if persons is None or archetypes is None:
        return None
    names = F.create_map(*[F.lit(x) for kv in SEGMENT_ARCHETYPE.items() for x in kv])
    labelled = (
        modal_segments(segments_df).join(persons, on="customer_key", how="inner")
        .join(archetypes.select("person_id", "archetype"), on="person_id", how="inner")
        .withColumn("named_right", F.coalesce(names[F.col("segment")] == F.col("archetype"),
                                              F.lit(False)))
        .cache()
    )
    right = labelled.agg(F.avg(F.col("named_right").cast("double")).alias("share"),
                         F.count(F.lit(1)).alias("n")).first()
    assert right is not None  # an aggregate without grouping has one row
    out = {
        "archetype_ari": metrics.adjusted_rand_index(
            metrics.contingency(labelled, "segment", "archetype")),
        "archetype_name_accuracy": float(right["share"] or 0.0),
        "archetype_customers": float(right["n"]),
    }
    labelled.unpersist()
    return out


def archetype_ari(spark: Any, cfg: Any, *, tables: Any, segments_df: DataFrame) -> float | None:
    """ARI between each customer's most frequent active segment and their true archetype."""
    found = archetype_agreement(spark, cfg, tables=tables, segments_df=segments_df)
    return None if found is None else found["archetype_ari"]


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

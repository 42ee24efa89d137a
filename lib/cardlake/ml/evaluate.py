"""Evaluation against the generator's ground truth (``cfg.paths.truth_root``).

Only evaluation reads the truth, and only after a model is trained and its scores written:
nothing here feeds a feature or a label. Every function returns None when the truth (or the
entity-resolution crosswalk that maps customers to persons) is not on disk.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from cardlake.ml import metrics

if TYPE_CHECKING:
    from cardlake.config import Config
    from cardlake.tables import Tables

log = logging.getLogger("cardlake.ml")


def _truth(spark: SparkSession, cfg: Config, table: str) -> DataFrame | None:
    path = f"{cfg.paths.truth_root.rstrip('/')}/{table}"
    if "://" not in path and not Path(path).exists():
        log.info("truth %s not found at %s; skipping that evaluation", table, path)
        return None
    return spark.read.parquet(path)


def customer_persons(spark: SparkSession, cfg: Config, *, tables: Tables) -> DataFrame | None:
    """customer_key to the person most of its current source records belong to."""
    keys = _truth(spark, cfg, "source_keys")
    if keys is None or not tables.exists("silver.crosswalk"):
        return None
    crosswalk = tables.read("silver.crosswalk").where(F.col("is_current"))
    votes = (
        crosswalk.join(keys, crosswalk["source_record_id"] == keys["key_value"], how="inner")
        .groupBy("customer_key", "person_id")
        .count()
    )
    ranked = votes.withColumn(
        "rank",
        F.row_number().over(
            Window.partitionBy("customer_key").orderBy(F.desc("count"), F.col("person_id"))
        ),
    )
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
        .groupBy("customer_key", "segment")
        .count()
        .withColumn(
            "rank",
            F.row_number().over(
                Window.partitionBy("customer_key").orderBy(F.desc("count"), F.col("segment"))
            ),
        )
        .where(F.col("rank") == 1)
        .select("customer_key", "segment")
    )


def archetype_agreement(
    spark: SparkSession, cfg: Config, *, tables: Tables, segments_df: DataFrame
) -> dict[str, float] | None:
    """The adjusted Rand index between each customer's most frequent active segment and their
    true archetype, and the share of customers whose segment has their archetype's name."""
    persons = customer_persons(spark, cfg, tables=tables)
    archetypes = _truth(spark, cfg, "archetypes")
    if persons is None or archetypes is None:
        return None
    labelled = (
        modal_segments(segments_df)
        .join(persons, on="customer_key", how="inner")
        .join(archetypes.select("person_id", "archetype"), on="person_id", how="inner")
    )
    # One pass: the (segment, archetype) pairs give the ARI, and whether a pair is named
    # right, the share of customers named after their archetype.
    pairs = metrics.pair_counts(labelled, "segment", "archetype")
    named_right = pairs["segment"].map(SEGMENT_ARCHETYPE) == pairs["archetype"]
    n = float(pairs["count"].sum())
    return {
        "archetype_ari": metrics.adjusted_rand_index(
            metrics.contingency_of(pairs, "segment", "archetype")
        ),
        "archetype_name_accuracy": float(pairs["count"][named_right].sum()) / n if n else 0.0,
        "archetype_customers": n,
    }


def archetype_ari(
    spark: SparkSession, cfg: Config, *, tables: Tables, segments_df: DataFrame
) -> float | None:
    """ARI between each customer's most frequent active segment and their true archetype."""
    found = archetype_agreement(spark, cfg, tables=tables, segments_df=segments_df)
    return None if found is None else found["archetype_ari"]


def fraud_against_truth(
    spark: SparkSession, cfg: Config, *, scored_df: DataFrame
) -> dict[str, float] | None:
    """The model's AUC and average precision against the true fraud flag, next to the best
    achievable: those of the generator's own fraud probability on the same rows."""
    truth = _truth(spark, cfg, "transactions_truth")
    if truth is None:
        return None
    joined = (
        scored_df.select("transaction_id", "score")
        .join(
            truth.select(
                "transaction_id", "fraud_probability", F.col("is_fraud").cast("int").alias("label")
            ),
            on="transaction_id",
            how="inner",
        )
        .cache()
    )
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


def with_month_index(df: DataFrame) -> DataFrame:
    from cardlake.months import month_index

    return df.withColumn("month_idx", month_index(F.col("month")))


def at_risk_oracle(
    events_df: DataFrame, persons_df: DataFrame, *, horizon_months: int
) -> DataFrame:
    """The generator's probability that a person is at risk at month M: an adverse event in one
    of months M+1..M+horizon, ``1 - prod(1 - p)`` over those months' truths, or 1 when the
    person's churn month (a closure) falls in that window.

    Args:
        events_df: ``person_id``, ``month``, ``adverse_event_probability`` (every month).
        persons_df: ``person_id``, ``churn_month`` (``""`` or null when the person never left).
        horizon_months: the risk label's horizon.

    Returns:
        ``person_id``, ``month``, ``best_probability``.
    """
    from cardlake.months import month_index

    by_person = Window.partitionBy("person_id").orderBy("month_idx")
    ahead = by_person.rangeBetween(1, horizon_months)
    survive = F.exp(F.sum(F.log1p(-F.col("adverse_event_probability"))).over(ahead))
    churn = persons_df.select(
        "person_id",
        F.when(F.col("churn_month") != "", month_index(F.col("churn_month"))).alias("churn_idx"),
    )
    closes = (F.col("churn_idx") > F.col("month_idx")) & (
        F.col("churn_idx") <= F.col("month_idx") + horizon_months
    )
    return (
        with_month_index(
            events_df.select(
                "person_id", F.col("month").cast("string"), "adverse_event_probability"
            )
        )
        .join(churn, on="person_id", how="left")
        .select(
            "person_id",
            "month",
            F.when(F.coalesce(closes, F.lit(False)), F.lit(1.0))
            .otherwise(1.0 - F.coalesce(survive, F.lit(1.0)))
            .alias("best_probability"),
        )
    )


def ranking_against_best(
    joined_df: DataFrame, *, score_col: str = "score", best_col: str = "best_probability"
) -> dict[str, float]:
    """AUC of ``score_col`` and of the truth's ``best_col`` on the same labelled rows."""
    model_curve = metrics.score_curve(joined_df, score_col=score_col)
    best_curve = metrics.score_curve(joined_df, score_col=best_col)
    out = {
        "truth_rows": float(model_curve.n_pos + model_curve.n_neg),
        "auc": metrics.auc(model_curve),
        "best_achievable_auc": metrics.auc(best_curve),
    }
    out["auc_gap_to_best"] = out["best_achievable_auc"] - out["auc"]
    return out


def customer_risk_oracle(
    spark: SparkSession, cfg: Config, *, tables: Tables, horizon_months: int
) -> DataFrame | None:
    """``customer_key``, ``month``, ``best_probability``: :func:`at_risk_oracle` for each
    customer-month whose customer maps to a person (None without the truth)."""
    persons = customer_persons(spark, cfg, tables=tables)
    events = _truth(spark, cfg, "adverse_event_monthly")
    people = _truth(spark, cfg, "persons")
    if persons is None or events is None or people is None:
        return None
    oracle = at_risk_oracle(events, people, horizon_months=horizon_months)
    return persons.join(oracle, on="person_id", how="inner").select(
        "customer_key", "month", "best_probability"
    )


def risk_ranking_against_best(
    scored_df: DataFrame, oracle_df: DataFrame, *, score_col: str = "score"
) -> dict[str, float]:
    """:func:`ranking_against_best` of a risk score on the customer-months of
    :func:`customer_risk_oracle` (``oracle_df``)."""
    joined = (
        scored_df.select(
            "customer_key",
            F.col("month").cast("string"),
            "label",
            F.col(score_col).cast("double").alias("score"),
        )
        .join(oracle_df, on=["customer_key", "month"], how="inner")
        .cache()
    )
    out = ranking_against_best(joined)
    joined.unpersist()
    return out


def risk_against_truth(
    spark: SparkSession,
    cfg: Config,
    *,
    tables: Tables,
    scored_df: DataFrame,
    horizon_months: int,
    score_col: str = "score",
) -> dict[str, float] | None:
    """A risk score's AUC next to the best achievable (the generator's own probability of the
    at-risk label) on the same customer-months: those whose customer maps to a person."""
    oracle = customer_risk_oracle(spark, cfg, tables=tables, horizon_months=horizon_months)
    if oracle is None:
        return None
    return risk_ranking_against_best(scored_df, oracle, score_col=score_col)


def adoption_oracle(use_df: DataFrame, *, horizon_months: int) -> DataFrame:
    """The generator's probability that a person uses a product in one of months
    M+1..M+horizon: ``1 - prod(1 - p)`` over those months' per-month use probabilities.

    Args:
        use_df: ``person_id``, ``product``, ``month``, ``use_probability`` (every month).
        horizon_months: the propensity label's horizon.

    Returns:
        ``person_id``, ``product``, ``month``, ``best_probability``.
    """
    ahead = (
        Window.partitionBy("person_id", "product")
        .orderBy("month_idx")
        .rangeBetween(1, horizon_months)
    )
    survive = F.exp(
        F.sum(F.log1p(-F.least(F.col("use_probability"), F.lit(1.0 - 1e-9)))).over(ahead)
    )
    return with_month_index(
        use_df.select("person_id", "product", F.col("month").cast("string"), "use_probability")
    ).select(
        "person_id",
        "product",
        "month",
        (1.0 - F.coalesce(survive, F.lit(1.0))).alias("best_probability"),
    )


def propensity_against_truth(
    spark: SparkSession, cfg: Config, *, tables: Tables, scored_df: DataFrame, horizon_months: int
) -> dict[str, float] | None:
    """The propensity model's AUC next to the generator's adoption probability on the same
    customer-product-months."""
    persons = customer_persons(spark, cfg, tables=tables)
    use = _truth(spark, cfg, "product_use_monthly")
    if persons is None or use is None:
        return None
    joined = (
        scored_df.select("customer_key", "product", F.col("month").cast("string"), "label", "score")
        .join(persons, on="customer_key", how="inner")
        .join(
            adoption_oracle(use, horizon_months=horizon_months),
            on=["person_id", "product", "month"],
            how="inner",
        )
        .cache()
    )
    out = ranking_against_best(joined)
    best = metrics.score_curve(joined, score_col="best_probability")
    out["best_lift_10"] = metrics.lift_at(best, 0.1)
    joined.unpersist()
    return out

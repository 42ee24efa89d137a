"""Cross-sell propensity and campaign targeting: who will take up a product they do not hold.

A cross-sell campaign offers one app product; a customer responds when they start using it.
The label is that response seen in the data: for a customer-month M and a product the customer
has not used in the ``lookback_months`` up to M (not held), ``label`` = 1 when they use it in
one of months M+1..M+``horizon_months``. One classifier covers every product (the product is a
feature, next to the products held and the month's behaviour), so a campaign for any product
is scored by the same model. It is trained on months up to a cut-off, chosen on a validation
share of customers and measured out of time, with its gains against random targeting; where
the generator's truth is on disk, against the best achievable (the generator's own adoption
probability on the same rows).

Outputs: ``gold.customer_propensity`` (the latest month: each customer's propensity for each
product not held, ranked) and ``gold.campaign_targets`` (for each configured campaign, the
segments ranked by expected response rate, with their size and lift over the campaign's
average).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import pandas as pd
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from cardlake.ml import metrics, plots, tracking, training
from cardlake.ml.common import (
    FEATURES_TABLE,
    LABEL,
    SCORE,
    month_index,
    with_score,
)
from cardlake.ml.settings import MlSettings, PropensitySettings

if TYPE_CHECKING:
    from cardlake.config import Config
    from cardlake.tables import Tables

log = logging.getLogger("cardlake.ml")

USAGE_TABLE = "gold.fact_product_usage"
SEGMENTS_TABLE = "gold.customer_segments"
PROPENSITY_TABLE = "gold.customer_propensity"
TARGETS_TABLE = "gold.campaign_targets"
UNSEGMENTED = "unsegmented"
RANDOM = "random"


def held_column(product: str) -> str:
    return f"held_{product}"


def with_product_months(
    features_df: DataFrame,
    usage_df: DataFrame,
    *,
    products: Sequence[str],
    lookback_months: int,
    horizon_months: int,
    last_index: int,
) -> DataFrame:
    """One row per customer-month of ``features_df`` and product, with what was held and taken.

    Adds ``month_idx``, ``product``, ``held`` (used in months M-lookback+1..M), ``held_<p>`` for
    every product, ``products_held`` and ``label`` (used in M+1..M+horizon; null when that window
    runs past ``last_index``). Usage of other products than ``products`` is ignored.
    """
    used = (
        usage_df.where(F.col("customer_key").isNotNull() & F.col("product").isin(*products))
        .groupBy("customer_key", "month", "product")
        .agg(F.sum("sessions").alias("sessions"))
    )
    grid = features_df.withColumn("product", F.explode(F.array(*[F.lit(p) for p in products])))
    by_product = Window.partitionBy("customer_key", "product").orderBy("month_idx")
    in_month = F.col("sessions").isNotNull().cast("int")
    rows = (
        grid.join(used, on=["customer_key", "month", "product"], how="left")
        .withColumn("month_idx", month_index(F.col("month")))
        .withColumn(
            "held",
            F.coalesce(
                F.max(in_month).over(by_product.rangeBetween(-(lookback_months - 1), 0)), F.lit(0)
            ),
        )
        .withColumn(
            "taken",
            F.coalesce(F.max(in_month).over(by_product.rangeBetween(1, horizon_months)), F.lit(0)),
        )
        .withColumn(
            LABEL,
            F.when(
                F.col("month_idx") + horizon_months > last_index, F.lit(None).cast("int")
            ).otherwise(F.col("taken")),
        )
        .drop("sessions", "taken")
    )
    customer_month = Window.partitionBy("customer_key", "month")
    return rows.select(
        "*",
        *[
            F.max(F.when(F.col("product") == p, F.col("held")).otherwise(0))
            .over(customer_month)
            .cast("double")
            .alias(held_column(p))
            for p in products
        ],
        F.sum("held").over(customer_month).cast("double").alias("products_held"),
    )


def campaign_targets(scored_df: DataFrame, *, campaigns: Mapping[str, str]) -> DataFrame:
    """For each campaign (offering a product), the segments ranked by expected response rate.

    Args:
        scored_df: one row per customer, month and product not held: ``customer_key``,
            ``month``, ``product``, ``segment``, ``propensity``.
        campaigns: campaign name -> the product it offers.

    Returns:
        ``campaign``, ``product``, ``segment``, ``eligible_customers`` (not holding the product),
        ``expected_responders`` (sum of propensities), ``expected_response_rate`` (their mean),
        ``lift`` (that rate over the campaign's rate across every eligible customer),
        ``segment_rank`` (1 = the best segment to target) and ``month``.
    """
    offers = [
        F.struct(F.lit(c).alias("campaign"), F.lit(p).alias("offered"))
        for c, p in sorted(campaigns.items())
    ]
    offered = (
        scored_df.withColumn("offer", F.explode(F.array(*offers)))
        .where(F.col("offer.offered") == F.col("product"))
        .withColumn("campaign", F.col("offer.campaign"))
    )
    per_segment = offered.groupBy("month", "campaign", "product", "segment").agg(
        F.count(F.lit(1)).alias("eligible_customers"),
        F.sum("propensity").alias("expected_responders"),
    )
    campaign = Window.partitionBy("month", "campaign")
    rate = F.col("expected_responders") / F.col("eligible_customers")
    overall = F.sum("expected_responders").over(campaign) / F.sum("eligible_customers").over(
        campaign
    )
    ranked = per_segment.withColumn("expected_response_rate", rate).withColumn(
        "lift", F.when(overall > 0, rate / overall)
    )
    return ranked.select(
        "campaign",
        "product",
        "segment",
        "eligible_customers",
        "expected_responders",
        "expected_response_rate",
        "lift",
        F.row_number()
        .over(campaign.orderBy(F.desc("expected_response_rate"), F.col("segment")))
        .alias("segment_rank"),
        "month",
    )


def gains_frame(
    curves: Mapping[str, metrics.Curve], points: tuple[float, ...] = metrics.GAIN_POINTS
) -> pd.DataFrame:
    """Gains and lift at each population share for each ranking, with random targeting (gain =
    share, lift 1) beside them."""
    parts = [metrics.gains_table(c, points).assign(ranking=name) for name, c in curves.items()]
    shares = list(points)
    parts.append(
        pd.DataFrame(
            {
                "population_share": shares,
                "gain": shares,
                "lift": [1.0] * len(shares),
                "ranking": RANDOM,
            }
        )
    )
    return pd.concat(parts, ignore_index=True)[["ranking", "population_share", "gain", "lift"]]


def _segments(tables: Tables, month: str) -> DataFrame | None:
    if not tables.exists(SEGMENTS_TABLE):
        return None
    return tables.read(SEGMENTS_TABLE, partitions={"month": [month]}).select(
        "customer_key", "segment"
    )


def propensity_task(s: PropensitySettings, *, seed: int) -> training.ModelTask:
    """One classifier for every product, chosen on validation AUC, measured and promoted out of
    time; the product and the products held are features."""
    return training.ModelTask(
        name="propensity",
        settings=s,
        seed=seed,
        numeric=(*s.numeric, *[held_column(p) for p in s.products], "products_held"),
        categorical=("product", *s.categorical),
        parts={"oot": "out of time"},
        choose_on="validation_auc",
        promotion_metric="oot_auc",
        drivers_title="Propensity drivers",
        curve_plots=False,  # gains and ROC against random, below
        keep_scored=("oot",),
    )


def run_propensity(
    spark: SparkSession,
    cfg: Config,
    *,
    tables: Tables,
    settings: MlSettings,
    tracker: tracking.Tracker,
) -> dict[str, float]:
    """Trains the cross-sell propensity model, measures its gains out of time (and against the
    truth where it is on disk), registers it and writes the latest month's propensities and
    campaign targets.

    Returns:
        Headline metrics: out-of-time AUC and lift of both classifiers, the best achievable AUC
        where the truth is on disk, and the rows written.
    """
    s = settings.propensity
    seed = settings.seed
    task = propensity_task(s, seed=seed)
    started = time.perf_counter()
    versions = {
        FEATURES_TABLE: tables.version(FEATURES_TABLE),
        USAGE_TABLE: tables.version(USAGE_TABLE),
    }
    features = tables.read(FEATURES_TABLE, version=versions[FEATURES_TABLE]).select(
        "customer_key", "month", *s.categorical, *s.numeric
    )
    usage = tables.read(USAGE_TABLE, version=versions[USAGE_TABLE])
    last_index = training.last_month_index(
        features.withColumn("month_idx", month_index(F.col("month")))
    )
    oot_index = last_index - s.horizon_months
    months = training.MonthSplit(
        cutoff_index=oot_index - s.horizon_months, oot_index=oot_index, score_index=last_index
    )
    split = model_rows(features, usage, s, task, months=months, seed=seed).cache()
    fit_df, valid_df = training.fit_and_valid(split, seed=seed + 2, fit_share=s.validation_share)
    with training.model_run(tracker, task, started) as out:
        tracking.log_params(
            {"seed": seed, **{f"propensity.{k}": v for k, v in vars(s).items() if k != "campaigns"}}
        )
        tracking.log_params({f"campaign.{c}": p for c, p in s.campaigns.items()})
        tracking.log_data_versions(versions)
        months.log()
        trained = training.train_and_register(
            tracker,
            task,
            fit_df=fit_df,
            valid_df=valid_df,
            parts={"oot": training.split_part(split, "oot")},
            evaluate=lambda c: {f"{c.kind}_oot_lift_20": metrics.lift_at(c.curves["oot"], 0.2)},
        )
        out.update(trained.metrics)
        out.update(
            against_truth(
                spark, cfg, tables, trained.scored["oot"][trained.chosen], s.horizon_months
            )
        )
        trained.release()
        log_gains(trained.curves["oot"])
        scored = with_score(trained.champion, training.split_part(split, "score"))
        out.update(
            write_outputs(
                tables,
                scored,
                s,
                model_version=trained.champion_version,
                month=months.score_month,
            )
        )
    split.unpersist()
    return out


def model_rows(
    features_df: DataFrame,
    usage_df: DataFrame,
    s: PropensitySettings,
    task: training.ModelTask,
    *,
    months: training.MonthSplit,
    seed: int,
) -> DataFrame:
    """The product-months not held, labelled and split (months no split uses left out)."""
    rows = with_product_months(
        features_df,
        usage_df,
        products=list(s.products),
        lookback_months=s.lookback_months,
        horizon_months=s.horizon_months,
        last_index=months.score_index,
    )
    split = months.apply(rows.where(F.col("held") == 0), train_share=s.train_share, seed=seed)
    return split.select(
        "customer_key", "month", "month_idx", "split", LABEL, *task.categorical, *task.numeric
    ).where(F.col("split") != "unused")


def against_truth(
    spark: SparkSession, cfg: Config, tables: Tables, scored_df: DataFrame, horizon_months: int
) -> dict[str, float]:
    """The chosen kind's out-of-time ranking against the generator's adoption probability;
    empty without the truth on disk."""
    from cardlake.ml import evaluate

    truth = evaluate.propensity_against_truth(
        spark, cfg, tables=tables, scored_df=scored_df, horizon_months=horizon_months
    )
    if truth is None:
        return {}
    return {
        "truth_auc": truth["auc"],
        "best_achievable_auc": truth["best_achievable_auc"],
        "auc_gap_to_best": truth["auc_gap_to_best"],
        "best_achievable_lift_10": truth["best_lift_10"],
        "truth_rows": truth["truth_rows"],
    }


def log_gains(curves: Mapping[str, metrics.Curve]) -> None:
    """Gains of both kinds beside random targeting, as a table and plots."""
    tracking.log_frame(gains_frame(curves), "gains_oot.csv")
    plots.log_png(
        plots.gains_figure(curves, "Cumulative gains against random (out of time)"),
        "gains_oot.png",
    )
    plots.log_png(plots.roc_figure(curves, "ROC (out of time)"), "roc_oot.png")


def write_outputs(
    tables: Tables,
    scored_df: DataFrame,
    s: PropensitySettings,
    *,
    model_version: str,
    month: str,
) -> dict[str, float]:
    """The month's propensities (products ranked per customer) and campaign targets (segments
    ranked per campaign); returns the rows written."""
    by_customer = Window.partitionBy("customer_key").orderBy(F.desc(SCORE), F.col("product"))
    propensity = scored_df.select(
        "customer_key",
        "product",
        F.col(SCORE).alias("propensity"),
        F.row_number().over(by_customer).alias("product_rank"),
        F.lit(model_version).alias("model_version"),
        "month",
    )
    tables.replace_partitions(
        PROPENSITY_TABLE, propensity, partitions={"month": [month]}, partition_by=["month"]
    )
    written = tables.read(PROPENSITY_TABLE, partitions={"month": [month]})
    segments = _segments(tables, month)
    with_segment = (
        written.join(segments, on="customer_key", how="left")
        if (segments is not None)
        else written.withColumn("segment", F.lit(None).cast("string"))
    )
    targets = campaign_targets(
        with_segment.withColumn("segment", F.coalesce("segment", F.lit(UNSEGMENTED))),
        campaigns=s.campaigns,
    )
    tables.replace_partitions(
        TARGETS_TABLE, targets, partitions={"month": [month]}, partition_by=["month"]
    )
    target_rows = tables.read(TARGETS_TABLE, partitions={"month": [month]}).toPandas()
    tracking.log_frame(target_rows, "campaign_targets.csv")
    return {
        "propensity_rows": float(written.count()),
        "campaign_target_rows": float(len(target_rows)),
    }

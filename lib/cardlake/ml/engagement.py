"""Engagement and disengagement: a clustered engagement metric turned into a business rule, the
target "unengaged in M+2 given features up to M", time splits, two tuned classifiers, scoring.

Engagement dimensions are gold's 3-month averages of completed transactions (count, USD value,
distinct types, active days). K-means and bisecting K-means (k=2) cluster them; the clustering
with the better silhouette gives two centroids, and the rule is: a customer is engaged when at
least ``rule_min_dimensions`` dimensions are at or above the midpoint of the two centroids.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pyspark.ml.evaluation import ClusteringEvaluator
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import (
    BooleanType,
    DoubleType,
    IntegerType,
    StringType,
    StructField,
    StructType,
)

from cardlake.ml import metrics, plots, tracking, training
from cardlake.ml.common import (
    FEATURES_TABLE,
    LABEL,
    SCORE,
    month_index,
    with_numeric_features,
    with_score,
)
from cardlake.ml.segmentation import clustering_pipeline
from cardlake.ml.settings import EngagementSettings, MlSettings
from cardlake.threads import in_parallel

if TYPE_CHECKING:
    from cardlake.config import Config
    from cardlake.tables import Tables

log = logging.getLogger("cardlake.ml")

SCORES_TABLE = "gold.engagement_scores"
SCORES_SCHEMA = StructType(
    [
        StructField("customer_key", StringType(), True),
        StructField("month", StringType(), True),
        StructField("score", DoubleType(), True),
        StructField("score_rank", IntegerType(), True),
        StructField("score_decile", IntegerType(), True),
        StructField("is_engaged", BooleanType(), True),
        StructField("model_version", StringType(), True),
    ]
)


@dataclass(frozen=True)
class EngagementRule:
    """Engaged when at least ``min_dimensions`` of the dimensions reach their cut."""

    cuts: Mapping[str, float]
    min_dimensions: int

    def column(self) -> Column:
        hits = [
            F.coalesce((F.col(d) >= F.lit(c)).cast("int"), F.lit(0)) for d, c in self.cuts.items()
        ]
        total = hits[0]
        for hit in hits[1:]:
            total = total + hit
        return total >= F.lit(self.min_dimensions)

    def as_dict(self) -> dict[str, Any]:
        return {"cuts": dict(self.cuts), "min_dimensions": self.min_dimensions}


def rule_from_centroids(centroids: pd.DataFrame, *, min_dimensions: int) -> EngagementRule:
    """Cuts at the midpoint of two centroids given in the dimensions' own units."""
    if len(centroids) != 2:
        raise ValueError(f"the engagement rule needs two centroids, got {len(centroids)}")
    return EngagementRule(
        cuts={d: float(centroids[d].mean()) for d in centroids.columns},
        min_dimensions=min_dimensions,
    )


def cluster_engagement(
    df: DataFrame,
    *,
    dimensions: Sequence[str],
    log_dimensions: Sequence[str],
    seed: int,
    max_iter: int = 30,
) -> dict[str, Any]:
    """K-means and bisecting K-means with k=2 on the engagement dimensions.

    Returns:
        Per algorithm, the silhouette and the centroids in the dimensions' own units; and
        ``best``, the algorithm with the higher silhouette.
    """
    bounds: dict[str, tuple[float, float] | None] = dict.fromkeys(dimensions)  # raw units

    def clustered(algorithm: str) -> dict[str, Any]:
        model = clustering_pipeline(
            bounds, log_dimensions, k=2, seed=seed, max_iter=max_iter, algorithm=algorithm
        ).fit(df)
        evaluator = ClusteringEvaluator(featuresCol="features", predictionCol="cluster")
        silhouette = float(evaluator.evaluate(model.transform(df)))
        scaler: Any = model.stages[-2]  # a StandardScalerModel
        kmeans: Any = model.stages[-1]
        centres = np.array(kmeans.clusterCenters()) * scaler.std.toArray()
        units = pd.DataFrame(centres, columns=list(dimensions))
        for d in log_dimensions:
            units[d] = np.expm1(units[d])
        return {"silhouette": silhouette, "centroids": units}

    algorithms = ("kmeans", "bisecting")  # two independent fits: at once, as grid points are
    result: dict[str, Any] = dict(zip(algorithms, in_parallel(clustered, algorithms), strict=True))
    result["best"] = max(("kmeans", "bisecting"), key=lambda a: result[a]["silhouette"])
    return result


def with_trends(df: DataFrame, columns: Sequence[str]) -> DataFrame:
    """``d_<col>``: change since the customer's previous month (0 for their first month)."""
    w = Window.partitionBy("customer_key").orderBy("month_idx")
    out = df
    for name in columns:
        out = out.withColumn(f"d_{name}", F.coalesce(F.col(name) - F.lag(name).over(w), F.lit(0.0)))
    return out


def with_target(
    df: DataFrame, *, rule: EngagementRule, lead_months: int, last_index: int
) -> DataFrame:
    """Adds ``label``: 1 when the customer is unengaged ``lead_months`` after the row's month.

    A customer without a row then has closed (gold carries rows up to the closure month), which
    counts as unengaged. Rows whose target month is after ``last_index`` get a null label. The
    target is read from month M + lead only; the row's features stay those of month M.
    """
    future = df.select(
        "customer_key",
        (F.col("month_idx") - lead_months).alias("month_idx"),
        rule.column().alias("future_engaged"),
    )
    joined = df.join(future, on=["customer_key", "month_idx"], how="left")
    return joined.withColumn(
        LABEL,
        F.when(F.col("month_idx") + lead_months > last_index, F.lit(None).cast("int"))
        .when(F.col("future_engaged").isNull(), F.lit(1))
        .otherwise((~F.col("future_engaged")).cast("int")),
    ).drop("future_engaged")


def prepare(features_df: DataFrame, s: EngagementSettings) -> DataFrame:
    """Numeric features with trends and month index, ready for the rule and the target."""
    numeric = list(dict.fromkeys([*s.features, *s.dimensions]))
    df = with_numeric_features(features_df, numeric).withColumn(
        "month_idx", month_index(F.col("month"))
    )
    return with_trends(df, s.trend_features)


def model_columns(s: EngagementSettings) -> list[str]:
    return [*s.features, *(f"d_{c}" for c in s.trend_features)]


def engagement_task(s: EngagementSettings, *, seed: int) -> training.ModelTask:
    """The disengagement classifiers: chosen out of sample, promoted on out-of-time AUC."""
    return training.ModelTask(
        name="engagement",
        settings=s,
        seed=seed,
        numeric=tuple(model_columns(s)),
        categorical=tuple(s.categorical),
        parts={"oos": "oos", "oot": "oot"},
        choose_on="oos_auc",
        promotion_metric="oot_auc",
        drivers_title="Drivers of disengagement",
        calibration_part="oot",
        run_name="disengagement",
    )


def run_engagement(
    spark: SparkSession,
    cfg: Config,
    *,
    tables: Tables,
    settings: MlSettings,
    tracker: tracking.Tracker,
) -> dict[str, float]:
    """Engagement clustering and rule, disengagement models, champion scoring of the latest
    month into ``gold.engagement_scores`` and the test/control experiment on its top decile.

    Returns:
        Headline metrics: out-of-sample and out-of-time AUC of both models, the rule's
        silhouettes, the experiment's balance and timings.
    """
    s = settings.engagement
    seed = settings.seed
    task = engagement_task(s, seed=seed)
    started = time.perf_counter()
    version = tables.version(FEATURES_TABLE)
    base = prepare(tables.read(FEATURES_TABLE, version=version), s).cache()
    bounds_idx = base.agg(F.min("month_idx"), F.max("month_idx")).first()
    assert bounds_idx is not None  # an aggregate without grouping has one row
    first_index, last_index = int(bounds_idx[0]), int(bounds_idx[1])
    oot_index = last_index - s.lead_months
    months = training.MonthSplit(
        cutoff_index=oot_index - s.oot_gap_months, oot_index=oot_index, score_index=last_index
    )
    if months.cutoff_index < first_index:
        raise ValueError(f"too few months for the engagement splits: {first_index}..{last_index}")
    with training.model_run(tracker, task, started) as out:
        tracking.log_params({"seed": seed, **{f"engagement.{k}": v for k, v in vars(s).items()}})
        tracking.log_data_versions({FEATURES_TABLE: version})
        months.log()
        # 1. the engagement metric: clusters on the training months only
        rule, silhouettes = learn_rule(
            base.where((F.col("month_idx") <= months.cutoff_index) & F.col("is_active")),
            s,
            seed=seed,
        )
        out.update(silhouettes)
        # 2. target, population and splits
        split = model_rows(base, rule, s, months=months, seed=seed).cache()
        fit_df, valid_df = training.fit_and_valid(
            split, seed=seed + 1, fit_share=s.validation_share
        )
        counts = {r["split"]: r["count"] for r in split.groupBy("split").count().collect()}
        tracking.log_metrics({f"rows_{k}": float(v) for k, v in counts.items()})
        # 3. two classifiers; the better registered on out-of-sample AUC, promoted out of time
        trained = training.train_and_register(
            tracker,
            task,
            fit_df=fit_df,
            valid_df=valid_df,
            parts={p: training.split_part(split, p) for p in task.parts},
            evaluate=log_gains_oot,
        )
        out.update(trained.metrics)
        # 4. score the latest month with the champion, then the experiment
        month = months.score_month
        written = write_scores(
            tables,
            with_score(trained.champion, training.split_part(split, "score")),
            model_version=trained.champion_version,
            month=month,
        )
        from cardlake.ml import experiment

        out.update(
            experiment.run_experiment(
                spark,
                tables=tables,
                settings=settings,
                scores_df=written,
                features_df=base,
                month=month,
            )
        )
    split.unpersist()
    base.unpersist()
    return out


def learn_rule(
    active_df: DataFrame, s: EngagementSettings, *, seed: int
) -> tuple[EngagementRule, dict[str, float]]:
    """The rule from the better clustering of the active training months, logged with both
    clusterings' centroids; returns it with their silhouettes."""
    clusters = cluster_engagement(
        active_df, dimensions=s.dimensions, log_dimensions=s.log_dimensions, seed=seed
    )
    best = clusters["best"]
    rule = rule_from_centroids(clusters[best]["centroids"], min_dimensions=s.rule_min_dimensions)
    silhouettes = {}
    for algorithm in ("kmeans", "bisecting"):
        silhouettes[f"engagement_silhouette_{algorithm}"] = clusters[algorithm]["silhouette"]
        tracking.log_frame(
            clusters[algorithm]["centroids"].reset_index(names="cluster"),
            f"engagement_centroids_{algorithm}.csv",
        )
    tracking.log_text(
        json.dumps({"clustering": best, **rule.as_dict()}, indent=2), "engagement_rule.json"
    )
    plots.log_png(
        plots.side_by_side_figure(
            clusters["kmeans"]["centroids"],
            clusters["bisecting"]["centroids"],
            ("k-means", "bisecting"),
        ),
        "engagement_centroids_side_by_side.png",
    )
    return rule, silhouettes


def model_rows(
    base_df: DataFrame,
    rule: EngagementRule,
    s: EngagementSettings,
    *,
    months: training.MonthSplit,
    seed: int,
) -> DataFrame:
    """The labelled population (engaged at M, unless configured otherwise) with its split."""
    labelled = with_target(
        base_df.withColumn("is_engaged", rule.column()),
        rule=rule,
        lead_months=s.lead_months,
        last_index=months.score_index,
    )
    population = labelled.where(F.col("is_engaged")) if s.only_engaged_at_m else labelled
    return months.apply(population, train_share=s.train_share, seed=seed).select(
        "customer_key",
        "month",
        "month_idx",
        "split",
        LABEL,
        "is_engaged",
        *s.categorical,
        *model_columns(s),
    )


def log_gains_oot(candidate: training.Candidate) -> dict[str, float]:
    tracking.log_frame(
        metrics.gains_table(candidate.curves["oot"]), f"{candidate.kind}_gains_oot.csv"
    )
    return {}


def write_scores(
    tables: Tables, scored_df: DataFrame, *, model_version: str, month: str
) -> DataFrame:
    """Replaces the month's ranked scores; returns them as written."""
    scores = with_engagement_scores(scored_df, model_version=model_version)
    tables.replace_partitions(
        SCORES_TABLE, scores, partitions={"month": [month]}, partition_by=["month"]
    )
    return tables.read(SCORES_TABLE, partitions={"month": [month]})


def with_engagement_scores(scored_df: DataFrame, *, model_version: str) -> DataFrame:
    """Ranks the scored month: 1 = most likely to disengage; deciles 1 (top) to 10."""
    w = Window.orderBy(F.desc(SCORE), F.col("customer_key"))  # one month of customers
    return scored_df.select(
        "customer_key",
        "month",
        F.col(SCORE).alias("score"),
        F.row_number().over(w).cast("int").alias("score_rank"),
        F.ntile(10).over(w).cast("int").alias("score_decile"),
        F.col("is_engaged"),
        F.lit(model_version).alias("model_version"),
    )

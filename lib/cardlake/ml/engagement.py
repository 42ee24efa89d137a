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

from cardlake.ml import metrics, plots, tracking
from cardlake.ml.common import (
    LABEL,
    SCORE,
    Fitted,
    champion_for_scoring,
    drivers,
    fit_classifier,
    hash_share,
    month_index,
    month_of_index,
    with_numeric_features,
    with_score,
    with_time_split,
)
from cardlake.ml.segmentation import clustering_pipeline
from cardlake.ml.settings import EngagementSettings, MlSettings

if TYPE_CHECKING:
    from cardlake.config import Config
    from cardlake.tables import Tables

log = logging.getLogger("cardlake.ml")

FEATURES_TABLE = "gold.customer_monthly_features"
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
    evaluator = ClusteringEvaluator(featuresCol="features", predictionCol="cluster")
    result: dict[str, Any] = {}
    for algorithm in ("kmeans", "bisecting"):
        model = clustering_pipeline(
            bounds, log_dimensions, k=2, seed=seed, max_iter=max_iter, algorithm=algorithm
        ).fit(df)
        silhouette = float(evaluator.evaluate(model.transform(df)))
        scaler: Any = model.stages[-2]  # a StandardScalerModel
        kmeans: Any = model.stages[-1]
        centres = np.array(kmeans.clusterCenters()) * scaler.std.toArray()
        units = pd.DataFrame(centres, columns=list(dimensions))
        for d in log_dimensions:
            units[d] = np.expm1(units[d])
        result[algorithm] = {"silhouette": silhouette, "centroids": units}
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
    from cardlake.ml import experiment

    s = settings.engagement
    seed = settings.seed
    started = time.perf_counter()
    version = tables.version(FEATURES_TABLE)
    base = prepare(tables.read(FEATURES_TABLE, version=version), s).cache()
    bounds_idx = base.agg(F.min("month_idx"), F.max("month_idx")).first()
    assert bounds_idx is not None  # an aggregate without grouping has one row
    first_index, last_index = int(bounds_idx[0]), int(bounds_idx[1])
    score_index = last_index
    oot_index = last_index - s.lead_months
    cutoff_index = oot_index - s.oot_gap_months
    if cutoff_index < first_index:
        raise ValueError(f"too few months for the engagement splits: {first_index}..{last_index}")
    out: dict[str, float] = {}
    with tracker.run("engagement", "disengagement") as run:
        tracking.log_params({"seed": seed, **{f"engagement.{k}": v for k, v in vars(s).items()}})
        tracking.log_data_versions({FEATURES_TABLE: version})
        tracking.log_params(
            {
                "split.cutoff_month": month_of_index(cutoff_index),
                "split.oot_month": month_of_index(oot_index),
                "split.score_month": month_of_index(score_index),
            }
        )
        # 1. the engagement metric: clusters on the training months only
        active = base.where((F.col("month_idx") <= cutoff_index) & F.col("is_active"))
        clusters = cluster_engagement(
            active, dimensions=s.dimensions, log_dimensions=s.log_dimensions, seed=seed
        )
        best = clusters["best"]
        rule = rule_from_centroids(
            clusters[best]["centroids"], min_dimensions=s.rule_min_dimensions
        )
        for algorithm in ("kmeans", "bisecting"):
            out[f"engagement_silhouette_{algorithm}"] = clusters[algorithm]["silhouette"]
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
        # 2. target, population and splits
        labelled = with_target(
            base.withColumn("is_engaged", rule.column()),
            rule=rule,
            lead_months=s.lead_months,
            last_index=last_index,
        )
        population = labelled.where(F.col("is_engaged")) if s.only_engaged_at_m else labelled
        split = with_time_split(
            population,
            cutoff_index=cutoff_index,
            oot_index=oot_index,
            score_index=score_index,
            train_share=s.train_share,
            seed=seed,
        )
        cols = [
            "customer_key",
            "month",
            "month_idx",
            "split",
            LABEL,
            "is_engaged",
            *s.categorical,
            *model_columns(s),
        ]
        split = split.select(*cols).cache()
        train = split.where(F.col("split") == "train")
        in_fit = hash_share(F.col("customer_key"), seed + 1) < s.validation_share
        fit_df, valid_df = train.where(in_fit), train.where(~in_fit)
        oos = split.where(F.col("split") == "oos")
        oot = split.where(F.col("split") == "oot")
        counts = {r["split"]: r["count"] for r in split.groupBy("split").count().collect()}
        tracking.log_metrics({f"rows_{k}": float(v) for k, v in counts.items()})
        # 3. two classifiers
        fitted: dict[str, Fitted] = {}
        curves: dict[str, dict[str, metrics.Curve]] = {"oos": {}, "oot": {}}
        calib: dict[str, pd.DataFrame] = {}
        for kind, grid in (("lr", s.lr_grid), ("gbt", s.gbt_grid)):
            model = fit_classifier(
                kind,
                fit_df=fit_df,
                valid_df=valid_df,
                numeric=model_columns(s),
                categorical=s.categorical,
                grid=grid,
                seed=seed,
                gbt_step=s.gbt_step_size,
            )
            fitted[kind] = model
            out[f"{kind}_training_seconds"] = model.seconds
            tracking.log_params({f"{kind}.best.{k}": v for k, v in model.params.items()})
            tracking.log_frame(pd.DataFrame(model.grid_results), f"{kind}_grid.csv")
            for name, part in (("oos", oos), ("oot", oot)):
                scored = with_score(model.model, part)
                curves[name][kind] = metrics.score_curve(scored)
                out.update(metrics.summary(curves[name][kind], prefix=f"{kind}_{name}_"))
                if name == "oot":
                    calib[kind] = metrics.calibration_table(scored)
            weights = drivers(model, fit_df)
            tracking.log_frame(weights.rename_axis("feature").reset_index(), f"{kind}_drivers.csv")
            plots.log_png(
                plots.importance_figure(
                    weights,
                    "Drivers of disengagement: "
                    + ("coefficients (standardised)" if kind == "lr" else "importances"),
                ),
                f"{kind}_drivers.png",
            )
            tracking.log_frame(metrics.gains_table(curves["oot"][kind]), f"{kind}_gains_oot.csv")
        for name in ("oos", "oot"):
            plots.log_png(plots.roc_figure(curves[name], f"ROC ({name})"), f"roc_{name}.png")
            plots.log_png(
                plots.pr_figure(curves[name], f"Precision-recall ({name})"), f"pr_{name}.png"
            )
            plots.log_png(
                plots.gains_figure(curves[name], f"Cumulative gains ({name})"), f"gains_{name}.png"
            )
        plots.log_png(plots.calibration_figure(calib, "Calibration (oot)"), "calibration_oot.png")
        # 4. register the better on out-of-sample AUC; promotion on out-of-time AUC
        chosen = max(fitted, key=lambda k: out[f"{k}_oos_auc"])
        mlflow_tag("candidate", chosen)
        sample = fit_df.select(*s.categorical, *model_columns(s)).limit(5).toPandas()
        uri = tracking.log_spark_model(
            fitted[chosen].model, sample, pd.DataFrame({SCORE: [0.5] * len(sample)})
        )
        promotion = tracking.register_and_promote(
            tracker,
            name=s.model_name,
            model_uri=uri,
            metric="oot_auc",
            value=out[f"{chosen}_oot_auc"],
        )
        # 5. score the latest month with the champion, then the experiment
        champion, champion_version = champion_for_scoring(promotion, fitted[chosen].model)
        to_score = split.where(F.col("split") == "score")
        scores = with_engagement_scores(
            with_score(champion, to_score), model_version=champion_version
        )
        month = month_of_index(score_index)
        tables.replace_partitions(
            SCORES_TABLE, scores, partitions={"month": [month]}, partition_by=["month"]
        )
        written = tables.read(SCORES_TABLE, partitions={"month": [month]})
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
        out["promoted"] = float(promotion.promoted)
        out["training_seconds"] = time.perf_counter() - started
        tracking.log_metrics(out)
        log.info("engagement run %s: %s", run.info.run_id, out)
    split.unpersist()
    base.unpersist()
    return out


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


def mlflow_tag(key: str, value: str) -> None:
    import mlflow

    mlflow.set_tag(key, value)

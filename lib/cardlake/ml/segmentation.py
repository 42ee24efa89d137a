"""Customer segmentation: five named behavioural segments that stay put.

Each active customer-month is described by the customer's behaviour over a trailing window of
months (channel mix, cross-border and night shares, how often and how much they spend, how
much their amounts vary), from ``gold.fact_transactions`` up to that month's end. K-means
with k fixed by configuration (the platform promises five segments) is fitted several times
from seeded starts and the fit with the lowest cost is kept; each cluster is named from its
centroid by configured rules (a global assignment, each name once). The champion model
segments every month, so a name stays attached to the same centroid, hence the same
behaviour, across months; a refit is named by the same rules from its own centroids.
Bisecting K-means at the same k is logged as the hierarchical comparison.

The capping is a stage of the model (a ``SQLTransformer`` holding the training quantiles), so
the registered champion segments any month the same way it was trained.
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
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.clustering import BisectingKMeans, KMeans
from pyspark.ml.evaluation import ClusteringEvaluator
from pyspark.ml.feature import SQLTransformer, StandardScaler, VectorAssembler
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import IntegerType, StringType, StructField, StructType

from cardlake.ml import metrics, plots, tracking
from cardlake.ml.common import FEATURES_TABLE, champion_for_scoring, month_index
from cardlake.ml.settings import MlSettings, SegmentationSettings
from cardlake.threads import in_parallel

if TYPE_CHECKING:
    from cardlake.config import Config
    from cardlake.tables import Tables

log = logging.getLogger("cardlake.ml")

TRANSACTIONS_TABLE = "gold.fact_transactions"
SEGMENTS_TABLE = "gold.customer_segments"
INACTIVE = "inactive"
NAMES_TAG = "segment_names"
FEATURES_TAG = "segment_features"
SEGMENTS_SCHEMA = StructType(
    [
        StructField("customer_key", StringType(), True),
        StructField("month", StringType(), True),
        StructField("cluster", IntegerType(), True),
        StructField("segment", StringType(), True),
        StructField("model_version", StringType(), True),
    ]
)


CHANNEL_GROUPS: dict[str, tuple[str, ...]] = {
    "atm_share": ("ATM",),
    "online_share": ("ONLINE",),
    "pos_share": ("POS",),
    "transfer_share": ("P2P", "TOPUP"),
    "invest_share": ("CRYPTO", "STOCK"),
    "fx_share": ("FX",),
}
BEHAVIOUR_COLUMNS = (
    "tx_per_month",
    *CHANNEL_GROUPS,
    "cross_border_share",
    "night_share",
    "log_amount_mean",
    "log_amount_sd",
)
"""What :func:`behaviour_features` computes; ``conf/ml.yaml`` picks the model's features."""


def behaviour_features(fact_transactions_df: DataFrame, *, window_months: int) -> DataFrame:
    """Each customer's behaviour over the ``window_months`` months up to each month with a
    transaction (point-in-time: nothing after the month's end).

    One row per customer and month with any transaction: transactions per month with any
    (``tx_per_month``), shares of transactions by channel group, cross-border and at night, and
    the mean and standard deviation of log USD amounts of completed debits (0 without two).
    """
    completed_debit = (
        (F.col("state") == "completed")
        & (F.col("direction") == "debit")
        & (F.col("amount_usd") > 0)
    )
    log_amount = F.when(completed_debit, F.log(F.col("amount_usd")))
    monthly = (
        fact_transactions_df.where(F.col("customer_key").isNotNull())
        .groupBy("customer_key", "month")
        .agg(
            F.count(F.lit(1)).alias("n"),
            *[
                F.count(F.when(F.col("channel").isin(*channels), 1)).alias(name)
                for name, channels in CHANNEL_GROUPS.items()
            ],
            F.count(F.when(F.col("is_cross_border"), 1)).alias("cross_border"),
            F.count(F.when(F.col("is_night"), 1)).alias("night"),
            F.count(log_amount).alias("n_debits"),
            F.coalesce(F.sum(log_amount), F.lit(0.0)).alias("log_sum"),
            F.coalesce(F.sum(log_amount * log_amount), F.lit(0.0)).alias("log_sq_sum"),
        )
        .withColumn("m_idx", month_index(F.col("month")))
    )
    trailing = (
        Window.partitionBy("customer_key").orderBy("m_idx").rangeBetween(-(window_months - 1), 0)
    )
    sums = ["n", *CHANNEL_GROUPS, "cross_border", "night", "n_debits", "log_sum", "log_sq_sum"]
    rolled = monthly.select(
        "customer_key",
        "month",
        F.count(F.lit(1)).over(trailing).alias("months_seen"),
        *[F.sum(c).over(trailing).alias(c) for c in sums],
    )
    n = F.col("n").cast("double")
    debits = F.col("n_debits").cast("double")
    mean = F.col("log_sum") / debits
    variance = (F.col("log_sq_sum") - debits * mean * mean) / (debits - 1)
    return rolled.select(
        "customer_key",
        "month",
        (n / F.col("months_seen")).alias("tx_per_month"),
        *[(F.col(name) / n).alias(name) for name in CHANNEL_GROUPS],
        (F.col("cross_border") / n).alias("cross_border_share"),
        (F.col("night") / n).alias("night_share"),
        F.when(debits > 0, mean).otherwise(F.lit(0.0)).alias("log_amount_mean"),
        F.when(debits > 1, F.sqrt(F.greatest(variance, F.lit(0.0))))
        .otherwise(F.lit(0.0))
        .alias("log_amount_sd"),
    )


def training_rows(
    features_df: DataFrame, behaviour_df: DataFrame, *, features: Sequence[str]
) -> DataFrame:
    """Active customer-months with their behaviour, in an order that does not depend on how
    the shuffle happened to run: K-means' seeded start samples rows by partition and position,
    so the same data must arrive the same way for two runs to give the same segments."""
    active = features_df.where(F.col("is_active")).select("customer_key", "month")
    return (
        active.join(behaviour_df, on=["customer_key", "month"], how="inner")
        .select("customer_key", "month", *[F.col(f).cast("double").alias(f) for f in features])
        .repartition(4, "customer_key")
        .sortWithinPartitions("customer_key", "month")
    )


@dataclass(frozen=True)
class FitSpec:
    """One clustering to fit: the algorithm (``kmeans`` or ``bisecting``), k and the seed."""

    algorithm: str
    k: int
    seed: int


def fit_clusterings(
    df: DataFrame,
    bounds: Mapping[str, tuple[float, float] | None],
    log_features: Sequence[str],
    specs: Sequence[FitSpec],
    *,
    max_iter: int,
) -> list[PipelineModel]:
    """Each spec's pipeline fitted on ``df``, two at a time (independent fits), in order."""

    def fit(spec: FitSpec) -> PipelineModel:
        return clustering_pipeline(
            bounds,
            log_features,
            k=spec.k,
            seed=spec.seed,
            max_iter=max_iter,
            algorithm=spec.algorithm,
        ).fit(df)

    return in_parallel(fit, list(specs))


def restart_specs(*, k: int, seed: int, restarts: int) -> list[FitSpec]:
    """K-means from ``restarts`` seeded starts: ``seed``, ``seed + 1``, ..."""
    return [FitSpec("kmeans", k, seed + i) for i in range(max(1, restarts))]


def lowest_cost(models: Sequence[PipelineModel]) -> tuple[PipelineModel, list[float]]:
    """The fit with the lowest within-cluster cost (the first on a tie) and every fit's cost."""
    costs = [float(_last(m).summary.trainingCost) for m in models]
    return models[costs.index(min(costs))], costs


def fit_restarts(
    df: DataFrame,
    bounds: Mapping[str, tuple[float, float] | None],
    log_features: Sequence[str],
    *,
    k: int,
    seed: int,
    restarts: int,
    max_iter: int,
) -> tuple[PipelineModel, list[float]]:
    """K-means from ``restarts`` seeded starts (``seed``, ``seed + 1``, ...); the fit with the
    lowest within-cluster cost (the first on a tie) and every fit's cost."""
    specs = restart_specs(k=k, seed=seed, restarts=restarts)
    return lowest_cost(fit_clusterings(df, bounds, log_features, specs, max_iter=max_iter))


def capped(name: str) -> str:
    return f"{name}__capped"


def cap_bounds(
    df: DataFrame,
    *,
    features: Sequence[str],
    log_features: Sequence[str],
    quantiles: Sequence[float],
    error: float,
) -> dict[str, tuple[float, float]]:
    """Lower and upper caps per feature (after log1p where asked), from the training rows."""
    logged = df.select(
        *[
            (F.log1p(F.greatest(F.col(f), F.lit(0.0))) if f in log_features else F.col(f)).alias(f)
            for f in features
        ]
    )
    lo, hi = quantiles
    found = logged.approxQuantile(list(features), [lo, hi], error)
    return {f: (float(q[0]), float(q[1])) for f, q in zip(features, found, strict=True)}


def capping_statement(
    bounds: Mapping[str, tuple[float, float] | None], log_features: Sequence[str]
) -> str:
    """SQL for the capping stage: ``<f>__capped`` = the (log1p'd) feature clipped to its caps
    (not clipped where the bounds are None)."""
    parts = []
    for name, caps in bounds.items():
        value = f"LOG1P(GREATEST(`{name}`, 0D))" if name in log_features else f"`{name}`"
        if caps is not None:
            value = (
                f"LEAST(GREATEST({value}, CAST('{caps[0]!r}' AS DOUBLE)), "
                f"CAST('{caps[1]!r}' AS DOUBLE))"
            )
        parts.append(f"{value} AS `{capped(name)}`")
    return f"SELECT *, {', '.join(parts)} FROM __THIS__"


def clustering_pipeline(
    bounds: Mapping[str, tuple[float, float] | None],
    log_features: Sequence[str],
    *,
    k: int,
    seed: int,
    max_iter: int,
    algorithm: str = "kmeans",
) -> Pipeline:
    names = list(bounds)
    cluster_cls = KMeans if algorithm == "kmeans" else BisectingKMeans
    return Pipeline(
        stages=[
            SQLTransformer(statement=capping_statement(bounds, log_features)),
            VectorAssembler(inputCols=[capped(n) for n in names], outputCol="raw_features"),
            # Not centred: Spark's bisecting K-means splits a centre multiplicatively, so a centre
            # at the origin never splits. Clustering is translation-invariant; z-scores of the
            # centroids are recovered in ``centroids``.
            StandardScaler(
                inputCol="raw_features", outputCol="features", withMean=False, withStd=True
            ),
            cluster_cls(
                featuresCol="features", predictionCol="cluster", k=k, seed=seed, maxIter=max_iter
            ),
        ]
    )


def _last(model: PipelineModel) -> Any:
    """The pipeline's fitted clustering model (k-means or bisecting k-means)."""
    return model.stages[-1]


def centroids(model: PipelineModel, features: Sequence[str]) -> pd.DataFrame:
    """Cluster centres in z-scores, one row per cluster."""
    scaler: Any = model.stages[-2]  # a StandardScalerModel
    std = scaler.std.toArray()
    shift = np.divide(scaler.mean.toArray(), std, out=np.zeros_like(std), where=std > 0)
    centres = np.array(_last(model).clusterCenters()) - shift
    return pd.DataFrame(centres, columns=list(features)).rename_axis("cluster")


def name_segments(
    profile: pd.DataFrame, rules: Mapping[str, Mapping[str, float]]
) -> dict[int, str]:
    """Names clusters from their z-score profiles: each rule scores a cluster by the weighted
    sum of its centroid's z-scores, and names go to clusters by the assignment with the highest
    total score (each name and cluster once, ties by name order); clusters left over are
    ``mixed_<cluster>``.

    A global assignment rather than a greedy one: one very distinctive cluster cannot take a
    name that fits another cluster only slightly less well and leave that one a poor name.
    """
    from scipy.optimize import linear_sum_assignment

    clusters = [int(c) for c in profile.index]
    names = list(rules)
    scores = np.array(
        [
            [
                sum(
                    w * float(profile.loc[c, f])
                    for f, w in rules[n].items()
                    if f in profile.columns
                )
                for n in names
            ]
            for c in profile.index
        ]
    )
    rows, cols = linear_sum_assignment(-scores) if names else ([], [])
    named = {clusters[r]: names[c] for r, c in zip(rows, cols, strict=True)}
    return {c: named.get(c, f"mixed_{c}") for c in clusters}


def with_segments(
    model: PipelineModel,
    features_df: DataFrame,
    *,
    behaviour_df: DataFrame,
    features: Sequence[str],
    names: Mapping[int, str],
    model_version: str,
) -> DataFrame:
    """Segments every customer-month: active months by the model from their behaviour,
    inactive ones ``inactive``."""
    active = training_rows(features_df, behaviour_df, features=features)
    clustered = model.transform(active).select("customer_key", "month", "cluster")
    mapping = F.create_map(*[x for c, n in sorted(names.items()) for x in (F.lit(c), F.lit(n))])
    rest = (
        features_df.select("customer_key", "month")
        .join(
            clustered.select("customer_key", "month"), on=["customer_key", "month"], how="left_anti"
        )
        .select("customer_key", "month", F.lit(None).cast("int").alias("cluster"))
    )
    return clustered.unionByName(rest).select(
        "customer_key",
        "month",
        F.col("cluster").cast("int").alias("cluster"),
        F.coalesce(mapping[F.col("cluster")], F.lit(INACTIVE)).alias("segment"),
        F.lit(model_version).alias("model_version"),
    )


def _make_champion(tracker: tracking.Tracker, name: str, version: str) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracker.uri, registry_uri=tracker.uri)
    client.set_registered_model_alias(name, tracking.CHAMPION, version)


def _matched(reference: pd.DataFrame, other: pd.DataFrame) -> pd.DataFrame:
    # Reorders other's clusters to their nearest reference centroid, for side-by-side plots.
    from scipy.optimize import linear_sum_assignment

    cost = ((reference.to_numpy()[:, None, :] - other.to_numpy()[None, :, :]) ** 2).sum(axis=2)
    _, cols = linear_sum_assignment(cost)
    return other.iloc[cols].reset_index(drop=True).rename_axis("cluster")


def silhouette_of(model: PipelineModel, sample_df: DataFrame) -> float:
    evaluator = ClusteringEvaluator(featuresCol="features", predictionCol="cluster")
    return float(evaluator.evaluate(model.transform(sample_df)))


def run_segmentation(
    spark: SparkSession,
    cfg: Config,
    *,
    tables: Tables,
    settings: MlSettings,
    tracker: tracking.Tracker,
) -> dict[str, float]:
    """Fits K-means at the configured k from several seeded starts (lowest cost kept), names
    the segments by rule, logs bisecting K-means and the silhouette by k as diagnostics,
    registers the fit (promotion on silhouette) and writes ``gold.customer_segments`` with the
    champion.

    Returns:
        Headline metrics: k, the costs of the restarts, silhouettes, agreement between the two
        clusterings and, where the truth is on disk, the adjusted Rand index against the hidden
        archetypes and the share of customers whose segment carries their archetype's name.
    """
    s: SegmentationSettings = settings.segmentation
    seed = settings.seed
    started = time.perf_counter()
    versions = {
        FEATURES_TABLE: tables.version(FEATURES_TABLE),
        TRANSACTIONS_TABLE: tables.version(TRANSACTIONS_TABLE),
    }
    features_df = tables.read(FEATURES_TABLE, version=versions[FEATURES_TABLE])
    behaviour = behaviour_features(
        tables.read(TRANSACTIONS_TABLE, version=versions[TRANSACTIONS_TABLE]),
        window_months=s.window_months,
    ).localCheckpoint()
    active = training_rows(features_df, behaviour, features=s.features).cache()
    bounds = cap_bounds(
        active,
        features=s.features,
        log_features=s.log_features,
        quantiles=s.cap_quantiles,
        error=s.quantile_error,
    )
    sample = active.sample(
        fraction=min(1.0, s.silhouette_sample / max(1, active.count())), seed=seed
    ).cache()
    with tracker.run("segmentation", f"kmeans-k{s.k}-restarts") as run:
        log_inputs(s, seed=seed, versions=versions, bounds=bounds)
        # The restarts and the diagnostics' fits (K-means at the other k, bisecting K-means at
        # k) are independent of one another: one batch, two at a time, so that no fit waits
        # for another batch to drain. Then every model's silhouette on the sample, likewise.
        restarts = restart_specs(k=s.k, seed=seed, restarts=s.restarts)
        other_ks = [k for k in range(s.k_min, s.k_max + 1) if k != s.k]
        diagnostic = [FitSpec("kmeans", k, seed) for k in other_ks]
        diagnostic.append(FitSpec("bisecting", s.k, seed))
        models = fit_clusterings(
            active, bounds, s.log_features, [*restarts, *diagnostic], max_iter=s.max_iter
        )
        kmeans, costs = lowest_cost(models[: len(restarts)])
        by_k = dict(zip(other_ks, models[len(restarts) : -1], strict=True))
        bisect = models[-1]
        tracking.log_frame(
            pd.DataFrame({"seed": [spec.seed for spec in restarts], "cost": costs}),
            "restart_costs.csv",
        )
        scored = [kmeans, *by_k.values(), bisect]
        found = in_parallel(lambda model: silhouette_of(model, sample), scored)
        silhouette, bi_silhouette = found[0], found[-1]
        silhouettes = dict(zip(by_k, found[1:-1], strict=True))
        if s.k_min <= s.k <= s.k_max:
            silhouettes[s.k] = silhouette
        log_silhouettes_by_k({k: silhouettes[k] for k in sorted(silhouettes)})
        names, diagnostics = compare_with_bisecting(
            kmeans, bisect, active, s, bi_silhouette=bi_silhouette
        )
        out = {
            "k": float(s.k),
            "silhouette_kmeans": silhouette,
            **diagnostics,
            "best_cost": min(costs),
            "worst_cost": max(costs),
        }
        promotion, champion, champion_version, champion_names = register_segmentation(
            tracker, kmeans, active, s, names=names, silhouette=silhouette
        )
        segments = with_segments(
            champion,
            features_df,
            behaviour_df=behaviour,
            features=s.features,
            names=champion_names,
            model_version=champion_version,
        )
        tables.overwrite(SEGMENTS_TABLE, segments, partition_by=["month"])
        from cardlake.ml import evaluate

        truth = evaluate.archetype_agreement(
            spark, cfg, tables=tables, segments_df=tables.read(SEGMENTS_TABLE)
        )
        if truth is not None:
            out.update(truth)
        out["training_seconds"] = time.perf_counter() - started
        out["promoted"] = float(promotion.promoted)
        tracking.log_metrics(out)
        log.info("segmentation run %s: %s", run.info.run_id, out)
    active.unpersist()
    sample.unpersist()
    return out


def log_inputs(
    s: SegmentationSettings,
    *,
    seed: int,
    versions: Mapping[str, int],
    bounds: Mapping[str, tuple[float, float] | None],
) -> None:
    """The settings, naming rules, data versions and the caps learnt from the training rows."""
    tracking.log_params(
        {
            "seed": seed,
            **{f"segmentation.{k}": v for k, v in vars(s).items() if k != "naming_rules"},
        }
    )
    tracking.log_text(
        json.dumps({k: dict(v) for k, v in s.naming_rules.items()}, indent=2),
        "naming_rules.json",
    )
    tracking.log_data_versions(versions)
    tracking.log_frame(
        pd.DataFrame(bounds, index=["lower", "upper"]).T.reset_index(names="feature"),
        "caps.csv",
    )


def log_silhouettes_by_k(silhouettes: Mapping[int, float]) -> None:
    """A diagnostic: is the configured k near a natural grouping? (K-means silhouette by k.)"""
    tracking.log_metrics({f"silhouette_k{k}": v for k, v in silhouettes.items()})
    if silhouettes:
        plots.log_png(
            plots.line_figure(
                list(silhouettes),
                {"silhouette": list(silhouettes.values())},
                "k",
                "K-means silhouette by k (diagnostic)",
            ),
            "silhouette_by_k.png",
        )


def compare_with_bisecting(
    kmeans: PipelineModel,
    bisect: PipelineModel,
    active_df: DataFrame,
    s: SegmentationSettings,
    *,
    bi_silhouette: float,
) -> tuple[dict[int, str], dict[str, float]]:
    """Names the k-means clusters and logs their profiles beside bisecting K-means at the same
    k (``bisect``, whose silhouette is ``bi_silhouette``); returns the names and the bisecting
    silhouette and agreement."""
    # Both clusterings of every row in one pass: the pairs give the agreement and the
    # k-means cluster sizes.
    km_scored = kmeans.transform(active_df).select(*s.features, F.col("cluster").alias("km"))
    both = bisect.transform(km_scored).select("km", F.col("cluster").alias("bi"))
    pairs = metrics.pair_counts(both, "km", "bi")
    agreement = metrics.adjusted_rand_index(metrics.contingency_of(pairs, "km", "bi"))
    km_profile = centroids(kmeans, s.features)
    bi_profile = _matched(km_profile, centroids(bisect, s.features))
    names = name_segments(km_profile, s.naming_rules)
    sizes = pairs.groupby("km")["count"].sum()
    report = km_profile.assign(
        segment=[names[int(c)] for c in km_profile.index],
        rows=[int(sizes.get(c, 0)) for c in km_profile.index],
    )
    tracking.log_frame(report.reset_index(), "kmeans_centroids_z.csv")
    tracking.log_frame(bi_profile.reset_index(), "bisecting_centroids_z.csv")
    plots.log_png(
        plots.profile_figure(
            km_profile.rename(index=names), f"K-means profiles (k={s.k}, z-scores)"
        ),
        "cluster_profiles_kmeans.png",
    )
    plots.log_png(
        plots.profile_figure(bi_profile, "Bisecting K-means profiles (z-scores)"),
        "cluster_profiles_bisecting.png",
    )
    plots.log_png(
        plots.side_by_side_figure(km_profile, bi_profile, ("k-means", "bisecting")),
        "centroids_side_by_side.png",
    )
    return names, {"silhouette_bisecting": bi_silhouette, "kmeans_vs_bisecting_ari": agreement}


def register_segmentation(
    tracker: tracking.Tracker,
    kmeans: PipelineModel,
    active_df: DataFrame,
    s: SegmentationSettings,
    *,
    names: Mapping[int, str],
    silhouette: float,
) -> tuple[tracking.Promotion, PipelineModel, str, dict[int, str]]:
    """Registers the fit with its names and features (promotion on silhouette); returns the
    promotion and the champion that segments, with its version and its own names."""
    example = active_df.select(*s.features).limit(5).toPandas()
    uri = tracking.log_spark_model(kmeans, example, pd.DataFrame({"cluster": [0] * len(example)}))
    promotion = tracking.register_and_promote(
        tracker,
        name=s.model_name,
        model_uri=uri,
        metric="silhouette",
        value=silhouette,
        tags={
            NAMES_TAG: json.dumps({str(k): v for k, v in names.items()}),
            FEATURES_TAG: json.dumps(list(s.features)),
        },
    )
    champion, champion_version = champion_for_scoring(promotion, kmeans)
    champion_tags = tracking.version_tags(tracker, s.model_name, champion_version)
    if json.loads(champion_tags.get(FEATURES_TAG, "null")) != list(s.features):
        # a champion trained on other inputs cannot score these rows: the new fit takes over
        _make_champion(tracker, s.model_name, promotion.version)
        champion, champion_version = kmeans, promotion.version
        champion_tags = tracking.version_tags(tracker, s.model_name, champion_version)
    champion_names = {int(k): v for k, v in json.loads(champion_tags[NAMES_TAG]).items()}
    return promotion, champion, champion_version, champion_names

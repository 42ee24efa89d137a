"""Customer segmentation: K-means on capped, scaled monthly behaviour, k by silhouette, bisecting
K-means as the hierarchical comparison, segments named from centroid profiles by config rules.

The capping is a stage of the model (a ``SQLTransformer`` holding the training quantiles), so
the registered champion segments any month the same way it was trained.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.clustering import BisectingKMeans, KMeans
from pyspark.ml.evaluation import ClusteringEvaluator
from pyspark.ml.feature import SQLTransformer, StandardScaler, VectorAssembler
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import IntegerType, StringType, StructField, StructType

from cardlake.ml import metrics, plots, tracking
from cardlake.ml.common import with_numeric_features
from cardlake.ml.settings import MlSettings, SegmentationSettings

log = logging.getLogger("cardlake.ml")

FEATURES_TABLE = "gold.customer_monthly_features"
SEGMENTS_TABLE = "gold.customer_segments"
INACTIVE = "inactive"
NAMES_TAG = "segment_names"
SEGMENTS_SCHEMA = StructType([
    StructField("customer_key", StringType(), True),
    StructField("month", StringType(), True),
    StructField("cluster", IntegerType(), True),
    StructField("segment", StringType(), True),
    StructField("model_version", StringType(), True),
])


def capped(name: str) -> str:
    return f"{name}__capped"


def cap_bounds(
    df: DataFrame, *, features: Sequence[str], log_features: Sequence[str],
    quantiles: Sequence[float], error: float,
) -> dict[str, tuple[float, float]]:
    """Lower and upper caps per feature (after log1p where asked), from the training rows."""
    logged = df.select(*[
        (F.log1p(F.greatest(F.col(f), F.lit(0.0))) if f in log_features else F.col(f)).alias(f)
        for f in features
    ])
    lo, hi = quantiles
    found = logged.approxQuantile(list(features), [lo, hi], error)
    return {f: (float(q[0]), float(q[1])) for f, q in zip(features, found, strict=True)}


def capping_statement(bounds: Mapping[str, tuple[float, float] | None],
                      log_features: Sequence[str]) -> str:
    """SQL for the capping stage: ``<f>__capped`` = the (log1p'd) feature clipped to its caps
    (not clipped where the bounds are None)."""
    parts = []
    for name, caps in bounds.items():
        value = f"LOG1P(GREATEST(`{name}`, 0D))" if name in log_features else f"`{name}`"
        if caps is not None:
            value = f"LEAST(GREATEST({value}, CAST('{caps[0]!r}' AS DOUBLE)), " \
                    f"CAST('{caps[1]!r}' AS DOUBLE))"
        parts.append(f"{value} AS `{capped(name)}`")
    return f"SELECT *, {', '.join(parts)} FROM __THIS__"


def clustering_pipeline(
    bounds: Mapping[str, tuple[float, float] | None], log_features: Sequence[str], *, k: int,
    seed: int, max_iter: int, algorithm: str = "kmeans",
) -> Pipeline:
    names = list(bounds)
    cluster_cls = KMeans if algorithm == "kmeans" else BisectingKMeans
    return Pipeline(stages=[
        SQLTransformer(statement=capping_statement(bounds, log_features)),
        VectorAssembler(inputCols=[capped(n) for n in names], outputCol="raw_features"),
        # Not centred: Spark's bisecting K-means splits a centre multiplicatively, so a centre
        # at the origin never splits. Clustering is translation-invariant; z-scores of the
        # centroids are recovered in ``centroids``.
        StandardScaler(inputCol="raw_features", outputCol="features", withMean=False,
                       withStd=True),
        cluster_cls(featuresCol="features", predictionCol="cluster", k=k, seed=seed,
                    maxIter=max_iter),
    ])


def centroids(model: PipelineModel, features: Sequence[str]) -> pd.DataFrame:
    """Cluster centres in z-scores, one row per cluster."""
    scaler = model.stages[-2]
    std = scaler.std.toArray()
    shift = np.divide(scaler.mean.toArray(), std, out=np.zeros_like(std), where=std > 0)
    centres = np.array(model.stages[-1].clusterCenters()) - shift
    return pd.DataFrame(centres, columns=list(features)).rename_axis("cluster")


def name_segments(profile: pd.DataFrame, rules: Mapping[str, Mapping[str, float]]
                  ) -> dict[int, str]:
    """Names clusters from their z-score profiles: each rule scores a cluster by the weighted
    sum of its centroid's z-scores; the best (cluster, name) pairs are taken greedily, each name
    and cluster once; clusters left over are ``mixed_<cluster>``."""
    scores = []
    for name, weights in rules.items():
        for cluster, row in profile.iterrows():
            value = sum(w * float(row[f]) for f, w in weights.items() if f in row.index)
            scores.append((value, name, int(cluster)))  # type: ignore[call-overload]
    scores.sort(key=lambda t: (-t[0], t[1], t[2]))
    named: dict[int, str] = {}
    used: set[str] = set()
    for _, name, cluster in scores:
        if cluster not in named and name not in used:
            named[cluster] = name
            used.add(name)
    return {int(c): named.get(int(c), f"mixed_{int(c)}") for c in profile.index}


def with_segments(model: PipelineModel, df: DataFrame, *, names: Mapping[int, str],
                  model_version: str) -> DataFrame:
    """Segments every customer-month: active months by the model, inactive ones ``inactive``."""
    active = df.where(F.col("is_active"))
    clustered = model.transform(active).select("customer_key", "month", "cluster")
    mapping = F.create_map(*[x for c, n in sorted(names.items()) for x in (F.lit(c), F.lit(n))])
    inactive = df.where(~F.coalesce(F.col("is_active"), F.lit(False))).select(
        "customer_key", "month", F.lit(None).cast("int").alias("cluster"))
    return clustered.unionByName(inactive).select(
        "customer_key",
        "month",
        F.col("cluster").cast("int").alias("cluster"),
        F.coalesce(mapping[F.col("cluster")], F.lit(INACTIVE)).alias("segment"),
        F.lit(model_version).alias("model_version"),
    )


def _matched(reference: pd.DataFrame, other: pd.DataFrame) -> pd.DataFrame:
    # Reorders other's clusters to their nearest reference centroid, for side-by-side plots.
    from scipy.optimize import linear_sum_assignment

    cost = ((reference.to_numpy()[:, None, :] - other.to_numpy()[None, :, :]) ** 2).sum(axis=2)
    _, cols = linear_sum_assignment(cost)
    return other.iloc[cols].reset_index(drop=True).rename_axis("cluster")


def run_segmentation(spark: Any, cfg: Any, *, tables: Any, settings: MlSettings,
                     tracker: tracking.Tracker) -> dict[str, float]:
    """Trains K-means over the k range and bisecting K-means at the chosen k, logs both,
    registers K-means (promotion on silhouette) and writes ``gold.customer_segments``.

    Returns:
        Headline metrics: chosen k, silhouettes, agreement between the two clusterings and,
        where the truth is on disk, the adjusted Rand index against the hidden archetypes.
    """
    s: SegmentationSettings = settings.segmentation
    seed = settings.seed
    started = time.perf_counter()
    version = tables.version(FEATURES_TABLE)
    features_df = tables.read(FEATURES_TABLE, version=version)
    active = with_numeric_features(features_df.where(F.col("is_active")), s.features).cache()
    bounds = cap_bounds(active, features=s.features, log_features=s.log_features,
                        quantiles=s.cap_quantiles, error=s.quantile_error)
    evaluator = ClusteringEvaluator(featuresCol="features", predictionCol="cluster")
    out: dict[str, float] = {}
    with tracker.run("segmentation", "kmeans-vs-bisecting") as run:
        tracking.log_params({"seed": seed, **{f"segmentation.{k}": v for k, v in
                                              vars(s).items() if k != "naming_rules"}})
        tracking.log_text(json.dumps({k: dict(v) for k, v in s.naming_rules.items()}, indent=2),
                          "naming_rules.json")
        tracking.log_data_versions({FEATURES_TABLE: version})
        tracking.log_frame(pd.DataFrame(bounds, index=["lower", "upper"]).T.reset_index(
            names="feature"), "caps.csv")
        silhouettes: dict[int, float] = {}
        models: dict[int, PipelineModel] = {}
        for k in range(s.k_min, s.k_max + 1):
            model = clustering_pipeline(bounds, s.log_features, k=k, seed=seed,
                                        max_iter=s.max_iter).fit(active)
            silhouettes[k] = float(evaluator.evaluate(model.transform(active)))
            models[k] = model
            tracking.log_metrics({f"silhouette_k{k}": silhouettes[k]})
        best_k = max(silhouettes, key=lambda k: (silhouettes[k], -k))
        kmeans = models[best_k]
        km_scored = kmeans.transform(active).select("customer_key", "month", "features",
                                                    F.col("cluster").alias("km"))
        bisect = clustering_pipeline(bounds, s.log_features, k=best_k, seed=seed,
                                     max_iter=s.max_iter, algorithm="bisecting").fit(active)
        bi_scored = bisect.transform(active)
        bi_silhouette = float(evaluator.evaluate(bi_scored))
        both = km_scored.join(bi_scored.select("customer_key", "month",
                                               F.col("cluster").alias("bi")),
                              on=["customer_key", "month"], how="inner")
        agreement = metrics.adjusted_rand_index(metrics.contingency(both, "km", "bi"))
        km_profile = centroids(kmeans, s.features)
        bi_profile = _matched(km_profile, centroids(bisect, s.features))
        names = name_segments(km_profile, s.naming_rules)
        sizes = km_scored.groupBy("km").count().toPandas().set_index("km")["count"]
        report = km_profile.assign(segment=[names[int(c)] for c in km_profile.index],
                                   rows=[int(sizes.get(c, 0)) for c in km_profile.index])
        tracking.log_frame(report.reset_index(), "kmeans_centroids_z.csv")
        tracking.log_frame(bi_profile.reset_index(), "bisecting_centroids_z.csv")
        plots.log_png(plots.line_figure(list(silhouettes), {"silhouette": list(
            silhouettes.values())}, "k", "K-means silhouette by k"), "silhouette_by_k.png")
        plots.log_png(plots.profile_figure(km_profile.rename(index=names),
                                           f"K-means profiles (k={best_k}, z-scores)"),
                      "cluster_profiles_kmeans.png")
        plots.log_png(plots.profile_figure(bi_profile, "Bisecting K-means profiles (z-scores)"),
                      "cluster_profiles_bisecting.png")
        plots.log_png(plots.side_by_side_figure(km_profile, bi_profile,
                                                ("k-means", "bisecting")),
                      "centroids_side_by_side.png")
        out = {"k": float(best_k), "silhouette_kmeans": silhouettes[best_k],
               "silhouette_bisecting": bi_silhouette, "kmeans_vs_bisecting_ari": agreement}
        sample = active.select(*s.features).limit(5).toPandas()
        uri = tracking.log_spark_model(kmeans, sample, pd.DataFrame({"cluster": [0] * len(
            sample)}))
        promotion = tracking.register_and_promote(
            tracker, name=s.model_name, model_uri=uri, metric="silhouette",
            value=silhouettes[best_k],
            tags={NAMES_TAG: json.dumps({str(k): v for k, v in names.items()})})
        champion, champion_version = tracking.load_champion(s.model_name)
        champion_names = {int(k): v for k, v in json.loads(tracking.version_tags(
            tracker, s.model_name, champion_version)[NAMES_TAG]).items()}
        segments = with_segments(champion, features_df, names=champion_names,
                                 model_version=champion_version)
        tables.overwrite(SEGMENTS_TABLE, segments, partition_by=["month"])
        from cardlake.ml import evaluate

        ari = evaluate.archetype_ari(spark, cfg, tables=tables, segments_df=tables.read(
            SEGMENTS_TABLE))
        if ari is not None:
            out["archetype_ari"] = ari
        out["training_seconds"] = time.perf_counter() - started
        out["promoted"] = float(promotion.promoted)
        tracking.log_metrics(out)
        log.info("segmentation run %s: %s", run.info.run_id, out)
    active.unpersist()
    return out

"""Explainable customer risk: a points-based scorecard with reason codes and tiers, and a
logistic-regression and gradient-boosted-trees classifier of at-risk customers for comparison.

At risk (the target): an adverse event in the next ``horizon_months`` months, defined in config
as a SQL condition on that month's features (fraud contacts, failed transactions, unresolved
service contacts, ...), or closure. The scorecard bins each risk feature at the configured
edges, replaces a bin by its weight of evidence (WoE, ln of the bad share over the good share),
fits a logistic regression on the WoE and turns it into points: ``pdo`` points double the odds of
being at risk and ``base_score`` stands for ``base_odds``. More points = more risk. A customer's
reason codes are the features where they lose the most points against that feature's best bin.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.feature import VectorAssembler
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from cardlake.ml import metrics, plots, tracking, training
from cardlake.ml.common import (
    FEATURES_TABLE,
    LABEL,
    SCORE,
    month_index,
    with_score,
)
from cardlake.ml.settings import BinSpec, MlSettings, RiskSettings

if TYPE_CHECKING:
    from cardlake.config import Config
    from cardlake.tables import Tables

log = logging.getLogger("cardlake.ml")

RISK_TABLE = "gold.customer_risk"
TIERS = ("Low", "Medium", "High")
FIT_SHARE = 0.75  # of the training customers; the rest choose the grid point
WOE_SMOOTHING = 0.5  # added to every bin's counts so an empty bin has a finite WoE
CLASSIFIER_EXTRA = (
    "tx_count",
    "spend_usd",
    "eng_count_3m",
    "tenure_months",
    "age",
    "service_contacts",
    "notifications_failed",
)


def with_risk_features(df: DataFrame) -> DataFrame:
    """Risk features from a customer's months up to the row's month (never later ones)."""
    by_month = Window.partitionBy("customer_key").orderBy("month_idx")
    w6 = by_month.rangeBetween(-5, 0)
    w3 = by_month.rangeBetween(-2, 0)
    before3 = by_month.rangeBetween(-3, -1)
    zero = F.lit(0.0)
    out = df.withColumn("month_idx", month_index(F.col("month")))
    return (
        out.withColumn(
            "fraud_contacts_6m", F.coalesce(F.sum("fraud_contacts").over(w6), zero).cast("double")
        )
        .withColumn(
            "service_unresolved_6m",
            F.coalesce(F.sum("service_unresolved").over(w6), zero).cast("double"),
        )
        .withColumn(
            "failed_rate_3m",
            F.coalesce(
                F.sum("failed_count").over(w3) / F.greatest(F.sum("tx_count").over(w3), F.lit(1)),
                zero,
            ),
        )
        .withColumn(
            "spend_spike_ratio",
            F.coalesce(
                F.col("spend_usd") / F.greatest(F.avg("spend_usd").over(before3), F.lit(1.0)),
                F.lit(1.0),
            ),
        )
        .withColumn("debt_outstanding_usd", F.coalesce(F.col("debt_outstanding_usd"), zero))
        .withColumn("credit_score", F.coalesce(F.col("credit_score").cast("double"), F.lit(650.0)))
        .withColumn("notification_fail_rate", F.coalesce(F.col("notification_fail_rate"), zero))
        .withColumn("recency_days", F.coalesce(F.col("recency_days").cast("double"), F.lit(999.0)))
    )


def with_risk_target(
    df: DataFrame,
    *,
    event_expression: str,
    horizon_months: int,
    closure_is_event: bool,
    last_index: int,
) -> DataFrame:
    """``label`` = 1 when an adverse event (or closure) happens in months M+1..M+horizon; null
    when that window runs past the data."""
    by_month = Window.partitionBy("customer_key").orderBy("month_idx")
    ahead = by_month.rangeBetween(1, horizon_months)
    event = F.coalesce(F.expr(event_expression).cast("int"), F.lit(0))
    last_seen = F.max("month_idx").over(Window.partitionBy("customer_key"))
    closes = (last_seen < F.col("month_idx") + horizon_months) & (last_seen < last_index)
    future_event = F.coalesce(F.max(event).over(ahead), F.lit(0)) == 1
    at_risk = future_event | closes if closure_is_event else future_event
    return df.withColumn(
        LABEL,
        F.when(F.col("month_idx") + horizon_months > last_index, F.lit(None).cast("int")).otherwise(
            at_risk.cast("int")
        ),
    )


def bin_column(feature: str, edges: tuple[float, ...]) -> Column:
    """Bin index 0..len(edges): the number of edges at or below the value."""
    total = F.lit(0)
    for edge in edges:
        total = total + (F.col(feature) >= F.lit(edge)).cast("int")
    return total


def with_bins(df: DataFrame, bins: Mapping[str, BinSpec]) -> DataFrame:
    return df.select(
        "*", *[bin_column(f, spec.edges).alias(f"bin_{f}") for f, spec in bins.items()]
    )


def woe_table(df: DataFrame, bins: Mapping[str, BinSpec]) -> pd.DataFrame:
    """Counts and weight of evidence per feature and bin (every bin listed, even empty ones)."""
    parts = [
        df.select(F.lit(f).alias("feature"), F.col(f"bin_{f}").alias("bin"), LABEL) for f in bins
    ]
    union = parts[0]
    for part in parts[1:]:
        union = union.unionByName(part)
    counts: pd.DataFrame = (
        union.groupBy("feature", "bin")
        .agg(F.sum(LABEL).alias("bad"), F.count(F.lit(1)).alias("n"))
        .toPandas()
    )
    rows = []
    for f, spec in bins.items():
        mine = counts[counts["feature"] == f].set_index("bin")
        for b in range(len(spec.edges) + 1):
            bad = float(mine["bad"].get(b, 0))
            n = float(mine["n"].get(b, 0))
            rows.append({"feature": f, "bin": b, "n": n, "bad": bad, "good": n - bad})
    table = pd.DataFrame(rows)
    totals = table.groupby("feature")[["bad", "good"]].transform("sum")
    k = table.groupby("feature")["bin"].transform("count")
    bad_share = (table["bad"] + WOE_SMOOTHING) / (totals["bad"] + WOE_SMOOTHING * k)
    good_share = (table["good"] + WOE_SMOOTHING) / (totals["good"] + WOE_SMOOTHING * k)
    table["woe"] = (bad_share / good_share).map(math.log)
    return table


def _lookup(table: pd.DataFrame, feature: str, value_col: str) -> Column:
    mine = table[table["feature"] == feature]
    pairs = [
        x
        for b, v in zip(mine["bin"], mine[value_col], strict=True)
        for x in (F.lit(int(b)), F.lit(float(v)))
    ]
    return F.create_map(*pairs)[F.col(f"bin_{feature}")]


def with_woe(df: DataFrame, table: pd.DataFrame, features: list[str]) -> DataFrame:
    return df.select(
        "*", *[F.coalesce(_lookup(table, f, "woe"), F.lit(0.0)).alias(f"woe_{f}") for f in features]
    )


def points_table(
    table: pd.DataFrame,
    coefficients: Mapping[str, float],
    intercept: float,
    *,
    pdo: float,
    base_score: float,
    base_odds: float,
) -> tuple[pd.DataFrame, int]:
    """Points per feature and bin, and the base points, from the WoE regression.

    score = base + sum of the bins' points = base_score + factor * (logit - ln(base_odds)),
    factor = pdo / ln 2, rounded to whole points.
    """
    factor = pdo / math.log(2)
    out = table.copy()
    out["coefficient"] = out["feature"].map(coefficients)
    out["points"] = (factor * out["coefficient"] * out["woe"]).round().astype(int)
    base = round(base_score + factor * (intercept - math.log(base_odds)))
    return out, base


def _point_columns(points: pd.DataFrame, bins: Mapping[str, BinSpec]) -> dict[str, Column]:
    return {f: F.coalesce(_lookup(points, f, "points"), F.lit(0.0)) for f in bins}


def risk_score(points: pd.DataFrame, base: int, bins: Mapping[str, BinSpec]) -> Column:
    """The scorecard's points total (base plus each binned feature's points), as an integer."""
    total = F.lit(float(base))
    for col in _point_columns(points, bins).values():
        total = total + col
    return total.cast("int")


def with_scorecard(
    df: DataFrame,
    points: pd.DataFrame,
    base: int,
    bins: Mapping[str, BinSpec],
    *,
    tiers: Mapping[str, float],
    max_reasons: int,
) -> DataFrame:
    """Adds ``risk_score``, ``tier`` and ``reasons`` (the top adverse factors, worst first)."""
    features = list(bins)
    point_cols = _point_columns(points, bins)
    best = points.groupby("feature")["points"].min()
    adverse = F.array(
        *[
            F.struct(
                (point_cols[f] - F.lit(float(best[f]))).alias("loss"),
                F.lit(i).alias("order"),
                F.lit(bins[f].reason).alias("reason"),
            )
            for i, f in enumerate(features)
        ]
    )
    ordered = F.array_sort(
        F.filter(adverse, lambda x: x["loss"] > 0),
        lambda a, b: (
            F.when(a["loss"] > b["loss"], -1)
            .when(a["loss"] < b["loss"], 1)
            .otherwise(a["order"] - b["order"])
        ),
    )
    score = risk_score(points, base, bins)
    return (
        df.withColumn("risk_score", score)
        .withColumn(
            "tier",
            F.when(score >= tiers["high"], TIERS[2])
            .when(score >= tiers["medium"], TIERS[1])
            .otherwise(TIERS[0]),
        )
        .withColumn("reasons", F.slice(F.transform(ordered, lambda x: x["reason"]), 1, max_reasons))
    )


def tier_cutoffs(
    scores_df: DataFrame, shares: Mapping[str, float], *, score_col: str = "risk_score"
) -> dict[str, float]:
    """Score cut-offs that put ``shares["high"]`` of ``scores_df`` in High and the next
    ``shares["medium"]`` in Medium (ties at a cut-off go up a tier)."""
    high_share, upper_share = shares["high"], shares["high"] + shares["medium"]
    if not 0.0 < high_share <= upper_share <= 1.0:
        raise ValueError(f"tier shares must be positive and add to at most 1: {dict(shares)}")
    n = scores_df.count()
    if n == 0:
        raise ValueError("no scores to set the tier cut-offs on")

    def kth_highest(share: float) -> float:
        k = max(1, math.ceil(share * n))
        top = scores_df.select(score_col).orderBy(F.desc(score_col)).limit(k)
        row = top.agg(F.min(score_col)).first()
        assert row is not None  # an aggregate without grouping has one row
        return float(row[0])

    return {"high": kth_highest(high_share), "medium": kth_highest(upper_share)}


def fit_scorecard(train_df: DataFrame, s: RiskSettings, *, seed: int) -> tuple[pd.DataFrame, int]:
    """WoE per bin and a logistic regression on the WoE, turned into a points table."""
    features = list(s.bins)
    binned = with_bins(train_df, s.bins)
    table = woe_table(binned, s.bins)
    woe_df = with_woe(binned, table, features)
    assembled = VectorAssembler(
        inputCols=[f"woe_{f}" for f in features], outputCol="features"
    ).transform(woe_df)
    lr = LogisticRegression(
        featuresCol="features",
        labelCol=LABEL,
        maxIter=s.lr_grid.max_iter[0],
        regParam=s.lr_grid.reg_param[0],
        standardization=False,
    ).fit(assembled)
    coefficients = dict(zip(features, lr.coefficients.toArray().tolist(), strict=True))
    return points_table(
        table,
        coefficients,
        float(lr.intercept),
        pdo=s.pdo,
        base_score=s.base_score,
        base_odds=s.base_odds,
    )


def against_best(
    spark: SparkSession,
    cfg: Config,
    *,
    tables: Tables,
    oot_scored: Mapping[str, DataFrame],
    horizon_months: int,
) -> dict[str, float]:
    """Each score's out-of-time AUC against the generator's truth, beside the best achievable
    on the same rows (the generator's own probability of the label); empty without the truth.

    ``oot_best_achievable_auc`` is one figure for all (the rows are the same); the gaps are
    ``<kind>_oot_gap_to_best``.
    """
    from cardlake.ml import evaluate

    oracle = evaluate.customer_risk_oracle(spark, cfg, tables=tables, horizon_months=horizon_months)
    if oracle is None:
        return {}
    oracle = oracle.cache()  # the truth's windows and joins once for every score
    out: dict[str, float] = {}
    try:
        for kind, scored in oot_scored.items():
            found = evaluate.risk_ranking_against_best(scored, oracle)
            out[f"{kind}_oot_truth_auc"] = found["auc"]
            out[f"{kind}_oot_gap_to_best"] = found["auc_gap_to_best"]
            out["oot_best_achievable_auc"] = found["best_achievable_auc"]
            out["oot_truth_rows"] = found["truth_rows"]
    finally:
        oracle.unpersist()
    return out


def risk_task(s: RiskSettings, *, seed: int) -> training.ModelTask:
    """The at-risk classifiers beside the scorecard: chosen out of sample, promoted out of time."""
    return training.ModelTask(
        name="risk",
        settings=s,
        seed=seed,
        numeric=tuple(dict.fromkeys([*s.bins, *CLASSIFIER_EXTRA])),
        categorical=("plan_type",),
        parts={"oos": "oos", "oot": "oot"},
        choose_on="oos_auc",
        promotion_metric="oot_auc",
        drivers_title="At-risk drivers",
        keep_scored=("oot",),
    )


def run_risk(
    spark: SparkSession,
    cfg: Config,
    *,
    tables: Tables,
    settings: MlSettings,
    tracker: tracking.Tracker,
) -> dict[str, float]:
    """Fits the scorecard and both classifiers, compares them out of time, registers the better
    classifier and writes the latest month's risk queue to ``gold.customer_risk``."""
    s = settings.risk
    seed = settings.seed
    task = risk_task(s, seed=seed)
    started = time.perf_counter()
    version = tables.version(FEATURES_TABLE)
    base = with_risk_features(tables.read(FEATURES_TABLE, version=version))
    last_index = training.last_month_index(base)
    oot_index = last_index - s.horizon_months
    months = training.MonthSplit(
        cutoff_index=oot_index - s.oot_gap_months, oot_index=oot_index, score_index=last_index
    )
    split = model_rows(base, s, task, months=months, seed=seed).cache()
    fit_df, valid_df = training.fit_and_valid(split, seed=seed + 1, fit_share=FIT_SHARE)
    parts = {name: training.split_part(split, name) for name in task.parts}
    with training.model_run(tracker, task, started) as out:
        tracking.log_params(
            {"seed": seed, **{f"risk.{k}": v for k, v in vars(s).items() if k != "bins"}}
        )
        tracking.log_params({f"risk.bins.{f}": list(spec.edges) for f, spec in s.bins.items()})
        tracking.log_data_versions({FEATURES_TABLE: version})
        months.log()
        card = learn_scorecard(training.split_part(split, "train"), s, seed=seed)
        scorecard = evaluate_scorecard(card, parts, s)
        out.update(scorecard.metrics)
        trained = training.train_and_register(
            tracker,
            task,
            fit_df=fit_df,
            valid_df=valid_df,
            parts=parts,
            compare_with=scorecard.curves,
        )
        out.update(trained.metrics)
        out.update(
            against_best(
                spark,
                cfg,
                tables=tables,
                oot_scored={"scorecard": scorecard.oot_scored, **trained.scored["oot"]},
                horizon_months=s.horizon_months,
            )
        )
        trained.release()
        out.update(
            write_queue(
                tables,
                card.apply(with_score(trained.champion, training.split_part(split, "score")), s),
                model_version=trained.champion_version,
                month=months.score_month,
            )
        )
    split.unpersist()
    return out


def model_rows(
    base_df: DataFrame,
    s: RiskSettings,
    task: training.ModelTask,
    *,
    months: training.MonthSplit,
    seed: int,
) -> DataFrame:
    """Every customer-month labelled, the classifiers' extra features as numbers, and split."""
    labelled = with_risk_target(
        base_df,
        event_expression=s.event_expression,
        horizon_months=s.horizon_months,
        closure_is_event=s.closure_is_event,
        last_index=months.score_index,
    )
    labelled = labelled.fillna(0.0, subset=list(CLASSIFIER_EXTRA))
    for name in CLASSIFIER_EXTRA:
        labelled = labelled.withColumn(name, F.col(name).cast("double"))
    split = months.apply(labelled, train_share=s.train_share, seed=seed)
    return split.select(
        "customer_key", "month", "month_idx", "split", LABEL, *task.categorical, *task.numeric
    )


@dataclass(frozen=True)
class Scorecard:
    """Points per feature and bin, the base points and the tiers' cut-offs."""

    points: pd.DataFrame
    base_points: int
    tiers: Mapping[str, float]

    def apply(self, df: DataFrame, s: RiskSettings) -> DataFrame:
        return with_scorecard(
            with_bins(df, s.bins),
            self.points,
            self.base_points,
            s.bins,
            tiers=self.tiers,
            max_reasons=s.max_reasons,
        )


@dataclass(frozen=True)
class ScorecardResult:
    """The scorecard measured as the classifiers are: curves and metrics per part."""

    curves: dict[str, dict[str, metrics.Curve]]  # part -> {"scorecard": curve}
    metrics: dict[str, float]
    oot_scored: DataFrame  # with ``score``, the points total, for the truth's comparison


def evaluate_scorecard(
    card: Scorecard, parts: Mapping[str, DataFrame], s: RiskSettings
) -> ScorecardResult:
    curves: dict[str, dict[str, metrics.Curve]] = {}
    found: dict[str, float] = {}
    for name, part in parts.items():
        scored = card.apply(part, s)
        curve = metrics.score_curve(scored, score_col="risk_score")
        curves[name] = {"scorecard": curve}
        found.update(metrics.summary(curve, prefix=f"scorecard_{name}_"))
    oot_scored = card.apply(parts["oot"], s).withColumn(SCORE, F.col("risk_score"))
    return ScorecardResult(curves=curves, metrics=found, oot_scored=oot_scored)


def learn_scorecard(train_df: DataFrame, s: RiskSettings, *, seed: int) -> Scorecard:
    """The scorecard and its tiers from the training rows, logged with its points."""
    points, base_points = fit_scorecard(train_df, s, seed=seed)
    tiers = tier_cutoffs(
        with_bins(train_df, s.bins).select(
            risk_score(points, base_points, s.bins).alias("risk_score")
        ),
        s.tier_shares,
    )
    tracking.log_params({f"risk.tier_cutoff.{k}": v for k, v in tiers.items()})
    tracking.log_frame(points, "scorecard_points.csv")
    tracking.log_metrics({"scorecard_base_points": float(base_points)})
    card = (
        points.groupby("feature")["points"].max() - points.groupby("feature")["points"].min()
    ).rename("points_range")
    plots.log_png(
        plots.importance_figure(card, "Scorecard: points range per feature"),
        "scorecard_points.png",
    )
    return Scorecard(points=points, base_points=base_points, tiers=tiers)


def write_queue(
    tables: Tables, queue_df: DataFrame, *, model_version: str, month: str
) -> dict[str, float]:
    """Replaces the month's risk queue; returns the customers per tier as written."""
    queue = queue_df.select(
        "customer_key",
        "month",
        "risk_score",
        "tier",
        "reasons",
        F.col(SCORE).alias("at_risk_probability"),
        F.lit(model_version).alias("model_version"),
    )
    tables.replace_partitions(
        RISK_TABLE, queue, partitions={"month": [month]}, partition_by=["month"]
    )
    counts = tables.read(RISK_TABLE, partitions={"month": [month]}).groupBy("tier").count()
    return {f"tier_{r['tier'].lower()}": float(r["count"]) for r in counts.collect()}

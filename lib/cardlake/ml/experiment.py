"""The retention experiment: the customers most likely to disengage, split into test and control
(seeded, stratified), and the checks that the two groups are alike before anything is done.

Assignment is by a seeded hash of the customer key within each stratum (the configured
characteristics plus score bands), so it is the same on every run and machine, and each
stratum is split in the configured proportion. Balance: Welch's t-test and Mann-Whitney U for
numbers (the primary test is Mann-Whitney where the characteristic is skewed), chi-square for
categories, and standardised mean differences (SMD) for both.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, IntegerType, StringType, StructField, StructType

from cardlake.ml import tracking
from cardlake.ml.common import hash_share
from cardlake.ml.settings import ExperimentSettings, MlSettings

log = logging.getLogger("cardlake.ml")

ASSIGNMENT_TABLE = "gold.experiment_assignment"
TEST, CONTROL = "test", "control"
SKEW_LIMIT = 1.0  # |skewness| above this: rank test (Mann-Whitney) is the primary numeric test
ASSIGNMENT_SCHEMA = StructType([
    StructField("customer_key", StringType(), True),
    StructField("month", StringType(), True),
    StructField("experiment", StringType(), True),
    StructField("group", StringType(), True),
    StructField("stratum", StringType(), True),
    StructField("score", DoubleType(), True),
    StructField("score_rank", IntegerType(), True),
])


def top_share(df: DataFrame, *, share: float, score_col: str = "score") -> DataFrame:
    """The ``share`` of rows with the highest scores (ties broken by customer key)."""
    n = df.count()
    keep = int(np.ceil(share * n))
    w = Window.orderBy(F.desc(score_col), F.col("customer_key"))  # one month of customers
    return df.withColumn("_rank", F.row_number().over(w)).where(F.col("_rank") <= keep).drop(
        "_rank")


def with_assignment(df: DataFrame, *, strata: Sequence[str], score_bins: int, test_share: float,
                    seed: int, score_col: str = "score") -> DataFrame:
    """Adds ``stratum`` and ``group`` (test/control): within each stratum the customers are
    ordered by a seeded hash and the first ``round(test_share * n)`` are test."""
    band = F.ntile(score_bins).over(Window.orderBy(F.desc(score_col), F.col("customer_key")))
    with_band = df.withColumn("_band", band)
    parts = [F.coalesce(F.col(c).cast("string"), F.lit("null")) for c in strata]
    stratum = F.concat_ws("|", *parts, F.concat(F.lit("band"), F.col("_band").cast("string")))
    with_stratum = with_band.withColumn("stratum", stratum)
    order = Window.partitionBy("stratum").orderBy(hash_share(F.col("customer_key"), seed),
                                                  F.col("customer_key"))
    size = Window.partitionBy("stratum")
    return (
        with_stratum.withColumn("_pos", F.row_number().over(order))
        .withColumn("_n", F.count(F.lit(1)).over(size))
        .withColumn("group", F.when(F.col("_pos") <= F.round(F.col("_n") * test_share), TEST)
                    .otherwise(CONTROL))
        .drop("_band", "_pos", "_n")
    )


def smd_numeric(a: np.ndarray, b: np.ndarray) -> float:
    pooled = np.sqrt((np.var(a, ddof=1) + np.var(b, ddof=1)) / 2.0)
    return float((np.mean(a) - np.mean(b)) / pooled) if pooled > 0 else 0.0


def smd_categorical(a: pd.Series, b: pd.Series) -> float:
    """Largest absolute SMD over the category's levels (each level as a proportion)."""
    worst = 0.0
    for level in sorted(set(a.dropna()) | set(b.dropna())):
        p1, p2 = float((a == level).mean()), float((b == level).mean())
        pooled = np.sqrt((p1 * (1 - p1) + p2 * (1 - p2)) / 2.0)
        if pooled > 0:
            worst = max(worst, abs(p1 - p2) / pooled)
    return worst


def balance_report(pdf: pd.DataFrame, *, numeric: Sequence[str], categorical: Sequence[str],
                   alpha: float, smd_limit: float, group_col: str = "group") -> pd.DataFrame:
    """One row per characteristic: the tests, their p-values, the SMD and a verdict."""
    from scipy import stats

    test = pdf[pdf[group_col] == TEST]
    control = pdf[pdf[group_col] == CONTROL]
    rows: list[dict[str, Any]] = []
    for name in numeric:
        a = test[name].astype(float).dropna().to_numpy()
        b = control[name].astype(float).dropna().to_numpy()
        t = stats.ttest_ind(a, b, equal_var=False)
        u = stats.mannwhitneyu(a, b, alternative="two-sided")
        skew = float(stats.skew(np.concatenate([a, b]))) if len(a) + len(b) > 2 else 0.0
        primary = "mann_whitney" if abs(skew) > SKEW_LIMIT else "welch_t"
        p = float(u.pvalue if primary == "mann_whitney" else t.pvalue)
        smd = smd_numeric(a, b)
        rows.append({"characteristic": name, "kind": "numeric", "test": primary,
                     "statistic": float(u.statistic if primary == "mann_whitney" else
                                        t.statistic),
                     "p_value": p, "t_p_value": float(t.pvalue), "mw_p_value": float(u.pvalue),
                     "smd": smd, "mean_test": float(np.mean(a)), "mean_control": float(np.mean(b)),
                     "balanced": bool(p >= alpha and abs(smd) <= smd_limit)})
    for name in categorical:
        table = pd.crosstab(pdf[name].fillna("null"), pdf[group_col])
        if table.shape[0] < 2:
            stat, p = 0.0, 1.0
        else:
            chi = stats.chi2_contingency(table.to_numpy())
            stat, p = float(chi.statistic), float(chi.pvalue)
        smd = smd_categorical(test[name], control[name])
        rows.append({"characteristic": name, "kind": "categorical", "test": "chi_square",
                     "statistic": stat, "p_value": p, "t_p_value": np.nan, "mw_p_value": np.nan,
                     "smd": smd, "mean_test": np.nan, "mean_control": np.nan,
                     "balanced": bool(p >= alpha and abs(smd) <= smd_limit)})
    return pd.DataFrame(rows)


def report_markdown(report: pd.DataFrame, *, month: str, sizes: dict[str, int]) -> str:
    lines = [f"# Retention experiment, {month}", "",
             f"Test {sizes.get(TEST, 0)}, control {sizes.get(CONTROL, 0)}.", "",
             "| characteristic | test | p-value | SMD | balanced |", "|---|---|---|---|---|"]
    for r in report.itertuples():
        lines.append(f"| {r.characteristic} | {r.test} | {r.p_value:.3f} | {r.smd:+.3f} | "
                     f"{'yes' if r.balanced else 'NO'} |")
    return "\n".join(lines) + "\n"


def run_experiment(spark: Any, *, tables: Any, settings: MlSettings, scores_df: DataFrame,
                   features_df: DataFrame, month: str) -> dict[str, float]:
    """Assigns the month's top scorers to test and control, checks balance, writes
    ``gold.experiment_assignment`` (the month's partition) and logs the report to the run."""
    s: ExperimentSettings = settings.experiment
    top = top_share(scores_df, share=s.top_share)
    characteristics = [c for c in dict.fromkeys([*s.numeric, *s.categorical, *s.strata])
                       if c != "score"]
    enriched = top.join(features_df.where(F.col("month") == month).select(
        "customer_key", *characteristics), on="customer_key", how="left")
    assigned = with_assignment(enriched, strata=s.strata, score_bins=s.score_bins,
                               test_share=s.test_share, seed=settings.seed)
    table = assigned.select(
        "customer_key", "month", F.lit(f"retention-{month}").alias("experiment"), "group",
        "stratum", "score", "score_rank")
    tables.replace_partitions(ASSIGNMENT_TABLE, table, partitions={"month": [month]},
                              partition_by=["month"])
    pdf = assigned.select("group", *dict.fromkeys([*s.numeric, *s.categorical])).toPandas()
    report = balance_report(pdf, numeric=s.numeric, categorical=s.categorical, alpha=s.alpha,
                            smd_limit=s.smd_limit)
    sizes = pdf["group"].value_counts().to_dict()
    tracking.log_frame(report, "experiment_balance.csv")
    tracking.log_text(report_markdown(report, month=month, sizes=sizes), "experiment_balance.md")
    return {
        "experiment_test": float(sizes.get(TEST, 0)),
        "experiment_control": float(sizes.get(CONTROL, 0)),
        "experiment_min_p_value": float(report["p_value"].min()),
        "experiment_max_abs_smd": float(report["smd"].abs().max()),
        "experiment_balanced": float(report["balanced"].all()),
    }

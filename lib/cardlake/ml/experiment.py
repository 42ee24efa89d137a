"""The retention experiment: the customers most likely to disengage, split into test and control
(seeded, stratified), and the checks that the two groups are alike before anything is done.

Assignment is by a seeded hash of the customer key within each stratum (the configured
characteristics plus score bands), so it is the same on every run and machine, and each
stratum is split in the configured proportion. Draws are repeated (re-randomisation) until
the groups pass the balance checks, or the most balanced draw is kept. Balance: Welch's t-test
and Mann-Whitney U for numbers (the primary test is Mann-Whitney where the characteristic is
skewed), chi-square for categories, and standardised mean differences (SMD) for both.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, IntegerType, StringType, StructField, StructType

from cardlake.ml import tracking
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


def assign_groups(pdf: pd.DataFrame, *, strata: Sequence[str], score_bins: int,
                  test_share: float, seed: int, draw: int = 0, score_col: str = "score"
                  ) -> pd.DataFrame:
    """``(stratum, group)`` per row of ``pdf`` (same index): within each stratum the customers
    are ordered by a hash of (seed, draw, customer key) and the first
    ``round(test_share * n)`` are test.

    Strata are the configured characteristics plus ``score_bins`` score bands of equal size
    (the first bands take the remainder, as Spark's ``ntile``). The top group is small (one
    month's top share), so this runs on the driver.
    """
    order = pdf.sort_values([score_col, "customer_key"], ascending=[False, True]).index
    n, bins = len(pdf), max(1, score_bins)
    size, extra = divmod(n, bins)
    bounds = np.cumsum([size + (1 if b < extra else 0) for b in range(bins)])
    band = pd.Series(np.searchsorted(bounds, np.arange(n), side="right") + 1, index=order)
    parts = [pdf[c].astype("string").fillna("null") for c in strata]
    stratum = pd.Series(
        ["|".join([*vals, f"band{b}"]) for *vals, b in zip(*parts, band.reindex(pdf.index),
                                                          strict=True)],
        index=pdf.index, dtype="string")
    rank_key = pdf["customer_key"].map(lambda k: hashlib.blake2b(
        f"{seed}:{draw}:{k}".encode(), digest_size=8).hexdigest())
    frame = pd.DataFrame({"stratum": stratum, "_h": rank_key, "_k": pdf["customer_key"]})
    frame = frame.sort_values(["stratum", "_h", "_k"])
    frame["_pos"] = frame.groupby("stratum").cumcount() + 1
    frame["_n"] = frame.groupby("stratum")["_k"].transform("size")
    frame["group"] = np.where(frame["_pos"] <= np.floor(frame["_n"] * test_share + 0.5),
                              TEST, CONTROL)
    return frame.loc[pdf.index, ["stratum", "group"]]


def rerandomise(pdf: pd.DataFrame, *, settings: ExperimentSettings, seed: int
                ) -> tuple[pd.DataFrame, int, pd.DataFrame]:
    """Draws seeded assignments until the groups are alike (re-randomisation).

    Small experiments are often unbalanced by chance alone: with a hundred customers, a
    standardised mean difference above 0.1 on one of ten characteristics is the rule, not the
    exception. Following Morgan and Rubin (2012), assignment ``0, 1, ...`` is drawn until every
    balance check passes, up to ``settings.draws``; if none passes, the draw with the smallest
    largest |SMD| is kept. Draws are seeded, so the choice is the same on every run.

    Returns:
        ``(assignment, draw, report)``: the chosen ``(stratum, group)`` per row, its draw
        number, and its :func:`balance_report`.
    """
    numeric = list(settings.numeric)
    best: tuple[float, int, pd.DataFrame] | None = None
    for draw in range(max(1, settings.draws)):
        groups = assign_groups(pdf, strata=settings.strata, score_bins=settings.score_bins,
                               test_share=settings.test_share, seed=seed, draw=draw)
        worst = _max_abs_smd(pdf, groups["group"], numeric=numeric,
                             categorical=settings.categorical)
        if best is None or worst < best[0]:
            best = (worst, draw, groups)
        if worst <= settings.smd_limit:
            report = balance_report(pdf.assign(group=groups["group"]), numeric=numeric,
                                    categorical=settings.categorical, alpha=settings.alpha,
                                    smd_limit=settings.smd_limit)
            if report["balanced"].all():
                return groups, draw, report
    assert best is not None
    _, draw, groups = best
    report = balance_report(pdf.assign(group=groups["group"]), numeric=numeric,
                            categorical=settings.categorical, alpha=settings.alpha,
                            smd_limit=settings.smd_limit)
    return groups, draw, report


def _max_abs_smd(pdf: pd.DataFrame, group: pd.Series, *, numeric: Sequence[str],
                 categorical: Sequence[str]) -> float:
    is_test = (group == TEST).to_numpy()
    worst = 0.0
    for name in numeric:
        values = pdf[name].astype(float).to_numpy()
        a, b = values[is_test], values[~is_test]
        worst = max(worst, abs(smd_numeric(a[~np.isnan(a)], b[~np.isnan(b)])))
    for name in categorical:
        worst = max(worst, smd_categorical(pdf[name][is_test], pdf[name][~is_test]))
    return worst


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


def report_markdown(report: pd.DataFrame, *, month: str, sizes: dict[str, int],
                    draw: int = 0) -> str:
    lines = [f"# Retention experiment, {month}", "",
             f"Test {sizes.get(TEST, 0)}, control {sizes.get(CONTROL, 0)}; assignment draw "
             f"{draw} (re-randomised until balanced).", "",
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
    pdf = enriched.select("customer_key", "month", "score", "score_rank",
                          *characteristics).toPandas()  # one month's top share: bounded
    groups, draw, report = rerandomise(pdf, settings=s, seed=settings.seed)
    assigned = pdf.assign(stratum=groups["stratum"].astype(object), group=groups["group"],
                          experiment=f"retention-{month}")
    table = spark.createDataFrame(
        assigned[[f.name for f in ASSIGNMENT_SCHEMA.fields]], schema=ASSIGNMENT_SCHEMA)
    tables.replace_partitions(ASSIGNMENT_TABLE, table, partitions={"month": [month]},
                              partition_by=["month"])
    sizes = assigned["group"].value_counts().to_dict()
    log.info("experiment %s: test %d, control %d, draw %d, max |SMD| %.3f", month,
             sizes.get(TEST, 0), sizes.get(CONTROL, 0), draw, report["smd"].abs().max())
    tracking.log_frame(report, "experiment_balance.csv")
    tracking.log_text(report_markdown(report, month=month, sizes=sizes, draw=draw),
                      "experiment_balance.md")
    return {
        "experiment_test": float(sizes.get(TEST, 0)),
        "experiment_control": float(sizes.get(CONTROL, 0)),
        "experiment_draw": float(draw),
        "experiment_min_p_value": float(report["p_value"].min()),
        "experiment_max_abs_smd": float(report["smd"].abs().max()),
        "experiment_balanced": float(report["balanced"].all()),
    }

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
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, IntegerType, StringType, StructField, StructType

from cardlake.ml import tracking
from cardlake.ml.settings import ExperimentSettings, MlSettings

if TYPE_CHECKING:
    from cardlake.tables import Tables

log = logging.getLogger("cardlake.ml")

ASSIGNMENT_TABLE = "gold.experiment_assignment"
TEST, CONTROL = "test", "control"
OTHER_LEVEL = "other"  # rare categorical levels, pooled for the balance checks
SKEW_LIMIT = 1.0  # |skewness| above this: rank test (Mann-Whitney) is the primary numeric test
ASSIGNMENT_SCHEMA = StructType(
    [
        StructField("customer_key", StringType(), True),
        StructField("month", StringType(), True),
        StructField("experiment", StringType(), True),
        StructField("group", StringType(), True),
        StructField("stratum", StringType(), True),
        StructField("score", DoubleType(), True),
        StructField("score_rank", IntegerType(), True),
    ]
)


def top_share(df: DataFrame, *, share: float, score_col: str = "score") -> DataFrame:
    """The ``share`` of rows with the highest scores (ties broken by customer key)."""
    n = df.count()
    keep = int(np.ceil(share * n))
    w = Window.orderBy(F.desc(score_col), F.col("customer_key"))  # one month of customers
    return (
        df.withColumn("_rank", F.row_number().over(w)).where(F.col("_rank") <= keep).drop("_rank")
    )


def assign_groups(
    pdf: pd.DataFrame,
    *,
    strata: Sequence[str],
    score_bins: int,
    test_share: float,
    seed: int,
    draw: int = 0,
    score_col: str = "score",
) -> pd.DataFrame:
    """``(stratum, group)`` per row of ``pdf`` (same index): within each stratum the customers
    are ordered by a hash of (seed, draw, customer key) and the first
    ``round(test_share * n)`` are test.

    Strata are the configured characteristics plus ``score_bins`` score bands of equal size
    (the first bands take the remainder, as Spark's ``ntile``). The top group is small (one
    month's top share), so this runs on the driver.
    """
    stratum = strata_of(pdf, strata=strata, score_bins=score_bins, score_col=score_col)
    is_test = _Draws(stratum, pdf["customer_key"], test_share=test_share, seed=seed).is_test(draw)
    return pd.DataFrame(
        {"stratum": stratum, "group": np.where(is_test, TEST, CONTROL)}, index=pdf.index
    )


def strata_of(
    pdf: pd.DataFrame, *, strata: Sequence[str], score_bins: int, score_col: str = "score"
) -> pd.Series:
    """Each row's stratum: its values of ``strata`` and its score band, ``"a|b|band1"``."""
    order = pdf.sort_values([score_col, "customer_key"], ascending=[False, True]).index
    n, bins = len(pdf), max(1, score_bins)
    size, extra = divmod(n, bins)
    bounds = np.cumsum([size + (1 if b < extra else 0) for b in range(bins)])
    band = pd.Series(np.searchsorted(bounds, np.arange(n), side="right") + 1, index=order)
    parts = [pdf[c].astype("string").fillna("null") for c in strata]
    return pd.Series(
        [
            "|".join([*vals, f"band{b}"])
            for *vals, b in zip(*parts, band.reindex(pdf.index), strict=True)
        ],
        index=pdf.index,
        dtype="string",
    )


class _Draws:
    """Seeded draws of a stratified split; what does not change between draws is set up once.

    A draw hashes (seed, draw, key) per customer and, within each stratum, orders customers by
    that hash (then key) and puts the first ``round(test_share * n)`` in test.
    """

    def __init__(
        self, stratum: pd.Series, keys: pd.Series, *, test_share: float, seed: int
    ) -> None:
        self._stratum = [str(v) for v in stratum]
        self._keys = [str(k) for k in keys]
        self._seed = seed
        sizes = pd.Series(self._stratum).value_counts().to_dict()
        self._quota = {s: int(np.floor(n * test_share + 0.5)) for s, n in sizes.items()}

    def is_test(self, draw: int) -> np.ndarray:
        hashes = [
            hashlib.blake2b(f"{self._seed}:{draw}:{k}".encode(), digest_size=8).hexdigest()
            for k in self._keys
        ]
        order = sorted(
            range(len(self._keys)), key=lambda i: (self._stratum[i], hashes[i], self._keys[i])
        )
        taken: dict[str, int] = {}
        out = np.zeros(len(self._keys), dtype=bool)
        for i in order:
            s = self._stratum[i]
            taken[s] = taken.get(s, 0) + 1
            out[i] = taken[s] <= self._quota[s]
        return out


def pooled_levels(values: pd.Series, *, min_count: int) -> pd.Series:
    """``values`` with every level held by fewer than ``min_count`` rows pooled into ``other``.

    A level of one customer cannot be balanced: whichever group holds it, its SMD is about
    sqrt(2 / n) (0.14 with 100 customers), and chi-square is unreliable on such sparse cells.
    Pooled, the rare levels are checked together; a pool still under ``min_count`` is left
    out of the SMD (:func:`smd_categorical`) and stays in the chi-square test.
    """
    counts = values.value_counts()
    rare = set(counts[counts < min_count].index)
    return values.where(~values.isin(rare), OTHER_LEVEL) if rare else values


class _Balance:
    """The largest |SMD| of a split, with the characteristics turned into arrays once."""

    def __init__(
        self,
        pdf: pd.DataFrame,
        *,
        numeric: Sequence[str],
        categorical: Sequence[str],
        min_level_count: int,
    ) -> None:
        self._numeric = [pdf[n].astype(float).to_numpy() for n in numeric]
        self._levels = []
        for name in categorical:
            column = pooled_levels(pdf[name], min_count=min_level_count)
            for level in _checked_levels(column, min_count=min_level_count):
                self._levels.append((column == level).to_numpy(dtype=float))

    def worst(self, is_test: np.ndarray) -> float:
        worst = 0.0
        for values in self._numeric:
            a, b = values[is_test], values[~is_test]
            worst = max(worst, abs(smd_numeric(a[~np.isnan(a)], b[~np.isnan(b)])))
        for indicator in self._levels:
            worst = max(
                worst,
                smd_proportions(
                    float(indicator[is_test].mean()), float(indicator[~is_test].mean())
                ),
            )
        return worst


def rerandomise(
    pdf: pd.DataFrame, *, settings: ExperimentSettings, seed: int
) -> tuple[pd.DataFrame, int, pd.DataFrame]:
    """Draws seeded assignments until the groups are alike (re-randomisation).

    Small experiments are often unbalanced by chance alone: with a hundred customers, a
    standardised mean difference above 0.1 on one of ten characteristics is the rule, not the
    exception. Following Morgan and Rubin (2012), assignment ``0, 1, ...`` is drawn until every
    balance check passes, up to ``settings.draws``; if none passes, the draw with the smallest
    largest |SMD| is kept. Draws are seeded, so the choice is the same on every run. Categorical
    levels held by fewer than ``settings.min_level_count`` customers are pooled for the checks
    (:func:`pooled_levels`).

    Returns:
        ``(assignment, draw, report)``: the chosen ``(stratum, group)`` per row, its draw
        number, and its :func:`balance_report`.
    """
    numeric = list(settings.numeric)
    stratum = strata_of(pdf, strata=settings.strata, score_bins=settings.score_bins)
    draws = _Draws(stratum, pdf["customer_key"], test_share=settings.test_share, seed=seed)
    balance = _Balance(
        pdf,
        numeric=numeric,
        categorical=settings.categorical,
        min_level_count=settings.min_level_count,
    )

    def outcome(is_test: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
        groups = pd.DataFrame(
            {"stratum": stratum, "group": np.where(is_test, TEST, CONTROL)}, index=pdf.index
        )
        report = balance_report(
            pdf.assign(group=groups["group"]),
            numeric=numeric,
            categorical=settings.categorical,
            alpha=settings.alpha,
            smd_limit=settings.smd_limit,
            min_level_count=settings.min_level_count,
        )
        return groups, report

    best: tuple[float, int, np.ndarray] | None = None
    for draw in range(max(1, settings.draws)):
        is_test = draws.is_test(draw)
        worst = balance.worst(is_test)
        if best is None or worst < best[0]:
            best = (worst, draw, is_test)
        if worst <= settings.smd_limit:
            groups, report = outcome(is_test)
            if report["balanced"].all():
                return groups, draw, report
    assert best is not None
    groups, report = outcome(best[2])
    return groups, best[1], report


def smd_numeric(a: np.ndarray, b: np.ndarray) -> float:
    pooled = np.sqrt((np.var(a, ddof=1) + np.var(b, ddof=1)) / 2.0)
    return float((np.mean(a) - np.mean(b)) / pooled) if pooled > 0 else 0.0


def smd_categorical(a: pd.Series, b: pd.Series, *, min_count: int = 1) -> float:
    """Largest absolute SMD over the category's levels (each level as a proportion), over the
    levels held by at least ``min_count`` rows of ``a`` and ``b`` together."""
    worst = 0.0
    for level in _checked_levels(pd.concat([a, b]), min_count=min_count):
        worst = max(worst, smd_proportions(float((a == level).mean()), float((b == level).mean())))
    return worst


def smd_proportions(p1: float, p2: float) -> float:
    """|SMD| of one level's share in two groups (0 when neither varies)."""
    pooled = np.sqrt((p1 * (1 - p1) + p2 * (1 - p2)) / 2.0)
    return float(abs(p1 - p2) / pooled) if pooled > 0 else 0.0


def _checked_levels(values: pd.Series, *, min_count: int) -> list[Any]:
    """The levels held by at least ``min_count`` rows, in order: those the SMD weighs."""
    counts = values.value_counts()
    return sorted(counts[counts >= min_count].index)


def balance_report(
    pdf: pd.DataFrame,
    *,
    numeric: Sequence[str],
    categorical: Sequence[str],
    alpha: float,
    smd_limit: float,
    group_col: str = "group",
    min_level_count: int = 1,
) -> pd.DataFrame:
    """One row per characteristic: the tests, their p-values, the SMD and a verdict; levels
    held by fewer than ``min_level_count`` rows are pooled (:func:`pooled_levels`)."""
    from scipy import stats

    pdf = pdf.assign(
        **{name: pooled_levels(pdf[name], min_count=min_level_count) for name in categorical}
    )
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
        rows.append(
            {
                "characteristic": name,
                "kind": "numeric",
                "test": primary,
                "statistic": float(u.statistic if primary == "mann_whitney" else t.statistic),
                "p_value": p,
                "t_p_value": float(t.pvalue),
                "mw_p_value": float(u.pvalue),
                "smd": smd,
                "mean_test": float(np.mean(a)),
                "mean_control": float(np.mean(b)),
                "balanced": bool(p >= alpha and abs(smd) <= smd_limit),
            }
        )
    for name in categorical:
        table = pd.crosstab(pdf[name].fillna("null"), pdf[group_col])
        if table.shape[0] < 2:
            stat, p = 0.0, 1.0
        else:
            chi = stats.chi2_contingency(table.to_numpy())
            stat, p = float(chi.statistic), float(chi.pvalue)
        smd = smd_categorical(test[name], control[name], min_count=min_level_count)
        rows.append(
            {
                "characteristic": name,
                "kind": "categorical",
                "test": "chi_square",
                "statistic": stat,
                "p_value": p,
                "t_p_value": np.nan,
                "mw_p_value": np.nan,
                "smd": smd,
                "mean_test": np.nan,
                "mean_control": np.nan,
                "balanced": bool(p >= alpha and abs(smd) <= smd_limit),
            }
        )
    return pd.DataFrame(rows)


def report_markdown(
    report: pd.DataFrame, *, month: str, sizes: dict[str, int], draw: int = 0
) -> str:
    lines = [
        f"# Retention experiment, {month}",
        "",
        f"Test {sizes.get(TEST, 0)}, control {sizes.get(CONTROL, 0)}; assignment draw "
        f"{draw} (re-randomised until balanced).",
        "",
        "| characteristic | test | p-value | SMD | balanced |",
        "|---|---|---|---|---|",
    ]
    for r in report.itertuples():
        lines.append(
            f"| {r.characteristic} | {r.test} | {r.p_value:.3f} | {r.smd:+.3f} | "
            f"{'yes' if r.balanced else 'NO'} |"
        )
    return "\n".join(lines) + "\n"


def run_experiment(
    spark: SparkSession,
    *,
    tables: Tables,
    settings: MlSettings,
    scores_df: DataFrame,
    features_df: DataFrame,
    month: str,
) -> dict[str, float]:
    """Assigns the month's top scorers to test and control, checks balance, writes
    ``gold.experiment_assignment`` (the month's partition) and logs the report to the run."""
    s: ExperimentSettings = settings.experiment
    top = top_share(scores_df, share=s.top_share)
    characteristics = [
        c for c in dict.fromkeys([*s.numeric, *s.categorical, *s.strata]) if c != "score"
    ]
    enriched = top.join(
        features_df.where(F.col("month") == month).select("customer_key", *characteristics),
        on="customer_key",
        how="left",
    )
    pdf: pd.DataFrame = enriched.select(
        "customer_key", "month", "score", "score_rank", *characteristics
    ).toPandas()  # one month's top share: bounded
    groups, draw, report = rerandomise(pdf, settings=s, seed=settings.seed)
    assigned = pdf.assign(
        stratum=groups["stratum"].astype(object),
        group=groups["group"],
        experiment=f"retention-{month}",
    )
    table = spark.createDataFrame(
        assigned[[f.name for f in ASSIGNMENT_SCHEMA.fields]], schema=ASSIGNMENT_SCHEMA
    )
    tables.replace_partitions(
        ASSIGNMENT_TABLE, table, partitions={"month": [month]}, partition_by=["month"]
    )
    sizes = assigned["group"].value_counts().to_dict()
    log.info(
        "experiment %s: test %d, control %d, draw %d, max |SMD| %.3f",
        month,
        sizes.get(TEST, 0),
        sizes.get(CONTROL, 0),
        draw,
        report["smd"].abs().max(),
    )
    tracking.log_frame(report, "experiment_balance.csv")
    tracking.log_text(
        report_markdown(report, month=month, sizes=sizes, draw=draw), "experiment_balance.md"
    )
    return {
        "experiment_test": float(sizes.get(TEST, 0)),
        "experiment_control": float(sizes.get(CONTROL, 0)),
        "experiment_draw": float(draw),
        "experiment_min_p_value": float(report["p_value"].min()),
        "experiment_max_abs_smd": float(report["smd"].abs().max()),
        "experiment_balanced": float(report["balanced"].all()),
    }

"""Ranking metrics from score/label DataFrames: AUC, average precision, KS, lift and gains.

Spark reduces the rows to one row per distinct score (positives and negatives at that score);
the driver gets only that curve, rounded to ``SCORE_DIGITS`` so its size stays bounded. Tied
scores count as one threshold, as scikit-learn does, so the figures match its definitions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

SCORE_DIGITS = 6
GAIN_POINTS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


@dataclass(frozen=True)
class Curve:
    """Distinct scores, highest first, with the positives and negatives at each."""

    scores: np.ndarray
    pos: np.ndarray
    neg: np.ndarray

    @property
    def n_pos(self) -> int:
        return int(self.pos.sum())

    @property
    def n_neg(self) -> int:
        return int(self.neg.sum())


def score_curve(df: DataFrame, *, score_col: str = "score", label_col: str = "label") -> Curve:
    """Reduces ``df`` to one row per distinct (rounded) score; labels are 0/1 or booleans."""
    label = F.col(label_col).cast("int")
    agg: pd.DataFrame = (
        df.where(F.col(score_col).isNotNull() & F.col(label_col).isNotNull())
        .groupBy(F.round(F.col(score_col).cast("double"), SCORE_DIGITS).alias("s"))
        .agg(F.sum(label).alias("pos"), F.sum(1 - label).alias("neg"))
        .orderBy(F.desc("s"))
        .toPandas()
    )
    return curve_from_arrays(agg["s"].to_numpy(), agg["pos"].to_numpy(), agg["neg"].to_numpy())


def curve_from_arrays(scores: np.ndarray, pos: np.ndarray, neg: np.ndarray) -> Curve:
    order = np.argsort(-np.asarray(scores, dtype=float), kind="stable")
    return Curve(
        scores=np.asarray(scores, dtype=float)[order],
        pos=np.asarray(pos, dtype=float)[order],
        neg=np.asarray(neg, dtype=float)[order],
    )


def roc_points(curve: Curve) -> tuple[np.ndarray, np.ndarray]:
    """False and true positive rates at each threshold, starting at (0, 0)."""
    tpr = np.concatenate([[0.0], np.cumsum(curve.pos) / max(curve.n_pos, 1)])
    fpr = np.concatenate([[0.0], np.cumsum(curve.neg) / max(curve.n_neg, 1)])
    return fpr, tpr


def auc(curve: Curve) -> float:
    """Area under the ROC curve (trapezoids, so ties count half); NaN with one class only."""
    if curve.n_pos == 0 or curve.n_neg == 0:
        return float("nan")
    fpr, tpr = roc_points(curve)
    return float(np.trapezoid(tpr, fpr))


def precision_recall(curve: Curve) -> tuple[np.ndarray, np.ndarray]:
    tp = np.cumsum(curve.pos)
    fp = np.cumsum(curve.neg)
    precision = tp / np.maximum(tp + fp, 1)
    recall = tp / max(curve.n_pos, 1)
    return precision, recall


def average_precision(curve: Curve) -> float:
    """Precision-recall AUC as average precision: sum of (R_n - R_{n-1}) * P_n."""
    if curve.n_pos == 0:
        return float("nan")
    precision, recall = precision_recall(curve)
    steps = np.diff(np.concatenate([[0.0], recall]))
    return float(np.sum(steps * precision))


def ks(curve: Curve) -> float:
    """Kolmogorov-Smirnov statistic: the largest gap between TPR and FPR."""
    if curve.n_pos == 0 or curve.n_neg == 0:
        return float("nan")
    fpr, tpr = roc_points(curve)
    return float(np.max(np.abs(tpr - fpr)))


def gains_table(curve: Curve, points: tuple[float, ...] = GAIN_POINTS) -> pd.DataFrame:
    """Cumulative gains and lift at shares of the population ranked by score.

    Within a group of tied scores the positives are spread evenly (linear interpolation), so
    the table does not depend on how ties happen to be ordered.
    """
    total = curve.pos + curve.neg
    pop = np.concatenate([[0.0], np.cumsum(total)]) / max(total.sum(), 1)
    captured = np.concatenate([[0.0], np.cumsum(curve.pos)]) / max(curve.n_pos, 1)
    gains = np.interp(points, pop, captured)
    return pd.DataFrame(
        {"population_share": points, "gain": gains, "lift": gains / np.asarray(points)}
    )


def lift_at(curve: Curve, share: float) -> float:
    return float(gains_table(curve, (share,))["lift"].iloc[0])


def calibration_table(
    df: DataFrame, *, score_col: str = "score", label_col: str = "label", bins: int = 10
) -> pd.DataFrame:
    """Mean score against observed rate in equal-width score bins (rows bounded by ``bins``)."""
    bin_col = F.least(F.floor(F.col(score_col) * bins), F.lit(bins - 1)).alias("bin")
    return (
        df.groupBy(bin_col)
        .agg(
            F.avg(score_col).alias("mean_score"),
            F.avg(F.col(label_col).cast("double")).alias("observed_rate"),
            F.count(F.lit(1)).alias("n"),
        )
        .orderBy("bin")
        .toPandas()
    )


def summary(curve: Curve, *, prefix: str = "") -> dict[str, float]:
    """The headline ranking metrics under one ``prefix`` (e.g. ``"oot_"``)."""
    return {
        f"{prefix}auc": auc(curve),
        f"{prefix}pr_auc": average_precision(curve),
        f"{prefix}ks": ks(curve),
        f"{prefix}lift_10": lift_at(curve, 0.1),
        f"{prefix}positive_rate": curve.n_pos / max(curve.n_pos + curve.n_neg, 1),
        f"{prefix}rows": float(curve.n_pos + curve.n_neg),
    }


def card_precision_at_k(
    df: DataFrame,
    *,
    k: int,
    card_col: str = "instrument_id",
    day_col: str = "txn_date",
    score_col: str = "score",
    label_col: str = "label",
) -> float:
    """Mean over days of the share of fraudulent cards among the day's ``k`` riskiest cards.

    A card's daily score is its highest transaction score; it is fraudulent that day when any of
    its transactions that day is. Days with fewer than ``k`` cards divide by ``k`` all the same
    (an investigator's daily capacity), as in the fraud-detection handbook's definition.
    """
    per_card = df.groupBy(day_col, card_col).agg(
        F.max(score_col).alias("card_score"), F.max(F.col(label_col).cast("int")).alias("fraud")
    )
    ranked = per_card.withColumn(
        "rank",
        F.row_number().over(
            Window.partitionBy(day_col).orderBy(F.desc("card_score"), F.col(card_col))
        ),
    ).where(F.col("rank") <= k)
    daily = ranked.groupBy(day_col).agg((F.sum("fraud") / F.lit(k)).alias("precision"))
    row = daily.agg(F.avg("precision")).first()
    assert row is not None  # an aggregate without grouping has one row
    return float(row[0]) if row[0] is not None else float("nan")


def probability_of_class_one(col_name: str = "probability") -> Column:
    """The positive class's probability out of an MLlib probability vector."""
    from pyspark.ml.functions import vector_to_array

    return vector_to_array(F.col(col_name))[1]


def adjusted_rand_index(contingency: np.ndarray) -> float:
    """Adjusted Rand index of two labellings from their contingency table (counts)."""
    table = np.asarray(contingency, dtype=float)
    n = table.sum()

    def pairs(x: np.ndarray) -> np.ndarray:
        return x * (x - 1) / 2.0

    index = pairs(table).sum()
    rows = pairs(table.sum(axis=1)).sum()
    cols = pairs(table.sum(axis=0)).sum()
    expected = rows * cols / (n * (n - 1) / 2.0) if n > 1 else 0.0
    maximum = (rows + cols) / 2.0
    if maximum == expected:
        return 1.0
    return float((index - expected) / (maximum - expected))


def contingency(df: DataFrame, left_col: str, right_col: str) -> np.ndarray:
    """Counts of (left, right) label pairs as a matrix (rows bounded by the label counts)."""
    return contingency_of(pair_counts(df, left_col, right_col), left_col, right_col)


def pair_counts(df: DataFrame, left_col: str, right_col: str) -> pd.DataFrame:
    """``left_col``, ``right_col`` and ``count``: one row per label pair present in ``df``."""
    counts: pd.DataFrame = df.groupBy(left_col, right_col).count().toPandas()
    return counts


def contingency_of(counts: pd.DataFrame, left_col: str, right_col: str) -> np.ndarray:
    """:func:`pair_counts` as a matrix: rows the left labels, columns the right, sorted."""
    return counts.pivot_table(
        index=left_col, columns=right_col, values="count", fill_value=0, aggfunc="sum"
    ).to_numpy()

"""``gold.customer_rfm``: recency, frequency and monetary scores (quintiles per month) and the
usual RFM groups, one row per customer on the books and month.

Scores run 1..5, 5 the best (most recent, most frequent, highest spend), from each measure's
percent rank among the month's customers, so tied customers share a score and a re-run gives
the same scores. Groups follow the common RFM segment map, first matching rule wins:

=====================  ==================================================
group                  rule
=====================  ==================================================
no_purchases           no completed transaction in the trailing 12 months
champions              R >= 4, F >= 4, M >= 4
cannot_lose_them       R <= 2, F >= 4, M >= 4
loyal                  R >= 3, F >= 4
at_risk                R <= 2, F >= 3
new_customers          R >= 4, F = 1
potential_loyalists    R >= 4, F >= 2
hibernating            R <= 2, F <= 2
need_attention         everything else
=====================  ==================================================
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

QUINTILES = 5
GROUPS: tuple[tuple[str, str], ...] = (
    ("no_purchases", "frequency_12m = 0"),
    ("champions", "r_score >= 4 AND f_score >= 4 AND m_score >= 4"),
    ("cannot_lose_them", "r_score <= 2 AND f_score >= 4 AND m_score >= 4"),
    ("loyal", "r_score >= 3 AND f_score >= 4"),
    ("at_risk", "r_score <= 2 AND f_score >= 3"),
    ("new_customers", "r_score >= 4 AND f_score = 1"),
    ("potential_loyalists", "r_score >= 4 AND f_score >= 2"),
    ("hibernating", "r_score <= 2 AND f_score <= 2"),
)
OTHERWISE = "need_attention"


def quintile(value: Column, *, partition: str = "month", higher_is_better: bool = True) -> Column:
    """1..5 by percent rank within ``partition`` (ties share a score); null values score 1."""
    order = value.asc_nulls_first() if higher_is_better else value.desc_nulls_first()
    rank = F.percent_rank().over(Window.partitionBy(partition).orderBy(order))
    return F.least(F.lit(QUINTILES), F.floor(rank * QUINTILES).cast("int") + 1)


def rfm_group() -> Column:
    """The group of a row with ``r_score``, ``f_score``, ``m_score`` and ``frequency_12m``."""
    branch = F.lit(OTHERWISE)
    for name, rule in reversed(GROUPS):
        branch = F.when(F.expr(rule), F.lit(name)).otherwise(branch)
    return branch


def customer_rfm(features_df: DataFrame) -> DataFrame:
    """Scores and group per customer and month from ``gold.customer_monthly_features``."""
    scored = features_df.select(
        "customer_key",
        "month",
        "recency_days",
        "frequency_12m",
        "monetary_12m_usd",
        quintile(F.col("recency_days"), higher_is_better=False).alias("r_score"),
        quintile(F.col("frequency_12m")).alias("f_score"),
        quintile(F.col("monetary_12m_usd")).alias("m_score"),
    )
    return scored.select(
        "customer_key",
        "month",
        "recency_days",
        "frequency_12m",
        "monetary_12m_usd",
        "r_score",
        "f_score",
        "m_score",
        F.concat_ws("", "r_score", "f_score", "m_score").alias("rfm_cell"),
        rfm_group().alias("rfm_group"),
    )

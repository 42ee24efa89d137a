"""``gold.kpi_debt_monthly``: the debt portfolio each month, one row per month, breakdown and
value: ``breakdown`` is ``all``, ``type``, ``status``, ``age_band`` or ``segment``.

A debt counts in a month when it was opened by the month's end and its holder is on the books
that month (``gold.customer_monthly_features``); its state is the current one in
``silver.debts`` (the source holds no history). Per row: debts, debtors, outstanding and
principal totals, the distribution of outstanding amounts (p25, median, p75, p90, max), the
mean debt-to-income of the debtors (their total outstanding over the midpoint of their income
bracket) and delinquency: the share of debts that are ``late`` or in ``default``, and their
outstanding share.
"""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from cardlake.gold.months import month_end

DELINQUENT = ("late", "default")
INCOME_MIDPOINTS_USD: Mapping[str, float] = {
    "<20k": 15_000.0,
    "20-40k": 30_000.0,
    "40-70k": 55_000.0,
    "70-120k": 95_000.0,
    ">120k": 150_000.0,
}
"""Annual income assumed for each bracket of ``silver.customers.income_bracket``."""
AGE_BANDS: tuple[tuple[str, int, int], ...] = (
    ("18-24", 0, 25),
    ("25-34", 25, 35),
    ("35-44", 35, 45),
    ("45-54", 45, 55),
    ("55-64", 55, 65),
    ("65+", 65, 200),
)
ALL = "all"


def age_band(age: Column) -> Column:
    out = F.lit("unknown")
    for name, low, high in reversed(AGE_BANDS):
        out = F.when((age >= low) & (age < high), F.lit(name)).otherwise(out)
    return out


def income_usd(bracket: Column, midpoints: Mapping[str, float] = INCOME_MIDPOINTS_USD) -> Column:
    mapping = F.create_map(*[x for k, v in midpoints.items() for x in (F.lit(k), F.lit(v))])
    return mapping[bracket]


def kpi_debt_monthly(
    debts_df: DataFrame,
    *,
    features_df: DataFrame,
    customers_df: DataFrame,
    segments_df: DataFrame | None = None,
) -> DataFrame:
    """Debt KPIs per month and breakdown (see the module docstring)."""
    on_books = features_df.select("customer_key", "month", "age")
    debts = debts_df.where(F.col("customer_key").isNotNull()).select(
        "debt_id",
        "customer_key",
        F.coalesce("type", F.lit("unknown")).alias("type"),
        F.coalesce("status", F.lit("unknown")).alias("status"),
        "principal",
        "outstanding",
        "opened",
    )
    monthly = debts.join(on_books, on="customer_key", how="inner").where(
        F.col("opened").isNull() | (F.col("opened") <= month_end(F.col("month")))
    )
    income = customers_df.select(
        "customer_key", income_usd(F.col("income_bracket")).alias("income_usd")
    )
    monthly = monthly.join(income, on="customer_key", how="left")
    if segments_df is not None:
        monthly = monthly.join(
            segments_df.select("customer_key", "month", "segment"),
            on=["customer_key", "month"],
            how="left",
        )
    else:
        monthly = monthly.withColumn("segment", F.lit(None).cast("string"))
    monthly = monthly.withColumn("segment", F.coalesce("segment", F.lit("unsegmented")))
    debtor_total = F.sum("outstanding").over(Window.partitionBy("customer_key", "month"))
    monthly = monthly.withColumn(
        "dti", F.when(F.col("income_usd") > 0, debtor_total / F.col("income_usd"))
    )
    monthly = monthly.withColumn("age_band", age_band(F.col("age"))).withColumn(
        "is_delinquent", F.col("status").isin(*DELINQUENT)
    )
    parts = []
    for breakdown in (ALL, "type", "status", "age_band", "segment"):
        value = F.lit(ALL) if breakdown == ALL else F.col(breakdown)
        parts.append(monthly.withColumn("breakdown", F.lit(breakdown)).withColumn("value", value))
    stacked = parts[0]
    for part in parts[1:]:
        stacked = stacked.unionByName(part)
    return _aggregate(stacked)


def _aggregate(stacked: DataFrame) -> DataFrame:
    first = (
        F.row_number().over(
            Window.partitionBy("month", "breakdown", "value", "customer_key").orderBy("debt_id")
        )
        == 1
    )
    flagged = stacked.withColumn("_first_of_debtor", first)
    agg = flagged.groupBy("month", "breakdown", "value").agg(
        F.count(F.lit(1)).alias("debts"),
        F.countDistinct("customer_key").alias("debtors"),
        F.sum("outstanding").alias("outstanding_usd"),
        F.sum("principal").alias("principal_usd"),
        F.percentile("outstanding", 0.25).alias("outstanding_p25"),
        F.percentile("outstanding", 0.5).alias("outstanding_median"),
        F.percentile("outstanding", 0.75).alias("outstanding_p75"),
        F.percentile("outstanding", 0.9).alias("outstanding_p90"),
        F.max("outstanding").alias("outstanding_max"),
        F.avg(F.when(F.col("_first_of_debtor"), F.col("dti"))).alias("debt_to_income_mean"),
        F.count(F.when(F.col("is_delinquent"), 1)).alias("delinquent_debts"),
        F.sum(F.when(F.col("is_delinquent"), F.col("outstanding")).otherwise(F.lit(0.0))).alias(
            "delinquent_outstanding_usd"
        ),
    )
    return agg.select(
        "month",
        "breakdown",
        "value",
        F.col("debts").cast("long").alias("debts"),
        F.col("debtors").cast("long").alias("debtors"),
        "outstanding_usd",
        "principal_usd",
        "outstanding_p25",
        "outstanding_median",
        "outstanding_p75",
        "outstanding_p90",
        "outstanding_max",
        "debt_to_income_mean",
        (F.col("delinquent_debts") / F.col("debts")).alias("delinquency_rate"),
        F.when(
            F.col("outstanding_usd") > 0,
            F.col("delinquent_outstanding_usd") / F.col("outstanding_usd"),
        )
        .otherwise(F.lit(0.0))
        .alias("delinquent_outstanding_share"),
    )

"""Monthly KPIs from gold facts and features: ``kpi_monthly`` and its breakdowns.

- ``kpi_monthly``: volume and value, success rate, revenue (fees and FX margin), customers on the
  books, active (a completed transaction) and new (joined in the month), active cards (a
  completed transaction on a card of ``dim_card``), notifications, reported fraud and its rate.
  KPIs that depend on model outputs (fraud alerts, risk tiers) are not here: gold runs before
  the models, so they are ``gold.kpi_model_monthly``, built by the analysts' stage after the
  models (``cardlake.analytics.model_kpis``);
- ``kpi_state_monthly``: count, USD value and share of count by transaction state;
- ``kpi_country_monthly``: customers, active, new, transactions and spend by customer country;
- ``kpi_plan_monthly``: customers by plan type and their share (the plan mix).
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cardlake.gold.dims import UNKNOWN_SK


def _share(part: str, whole: str) -> F.Column:
    return F.when(F.col(whole) > 0, F.col(part) / F.col(whole)).otherwise(F.lit(0.0))


def kpi_monthly(
    fact_transactions_df: DataFrame,
    *,
    features_df: DataFrame,
) -> DataFrame:
    """One row per month present in ``features_df``."""
    completed = F.col("state") == "completed"
    tx = fact_transactions_df.groupBy("month").agg(
        F.count(F.lit(1)).alias("tx_count"),
        F.coalesce(F.sum("amount_usd"), F.lit(0.0)).alias("tx_value_usd"),
        F.count(F.when(completed, 1)).alias("completed_count"),
        F.coalesce(F.sum(F.when(completed, F.col("amount_usd"))), F.lit(0.0)).alias(
            "completed_value_usd"
        ),
        F.coalesce(F.sum("fee_usd"), F.lit(0.0)).alias("fee_revenue_usd"),
        F.coalesce(F.sum("fx_margin_usd"), F.lit(0.0)).alias("fx_margin_usd"),
        F.count(F.when(F.col("is_fraud_reported"), 1)).alias("fraud_reported_count"),
        # wallets and cards missing from dim_card share the unknown key: not one card, so left out
        F.count_distinct(
            F.when(completed & (F.col("card_sk") != UNKNOWN_SK), F.col("card_sk"))
        ).alias("active_cards"),
    )
    customers = features_df.groupBy("month").agg(
        F.count(F.lit(1)).alias("customers"),
        F.count(F.when(F.col("is_active"), 1)).alias("active_customers"),
        F.count(F.when(F.col("tenure_months") == 0, 1)).alias("new_customers"),
        F.sum("notifications_sent").alias("notifications_sent"),
        F.sum("notifications_failed").alias("notifications_failed"),
    )
    joined = customers.join(tx, on="month", how="left")

    def zero(name: str, kind: str = "long") -> F.Column:
        return F.coalesce(F.col(name), F.lit(0)).cast(kind)

    return joined.select(
        "month",
        zero("tx_count").alias("tx_count"),
        zero("tx_value_usd", "double").alias("tx_value_usd"),
        zero("completed_count").alias("completed_count"),
        zero("completed_value_usd", "double").alias("completed_value_usd"),
        F.when(zero("tx_count") > 0, zero("completed_count") / zero("tx_count"))
        .otherwise(F.lit(0.0))
        .alias("success_rate"),
        zero("fee_revenue_usd", "double").alias("fee_revenue_usd"),
        zero("fx_margin_usd", "double").alias("fx_margin_usd"),
        (zero("fee_revenue_usd", "double") + zero("fx_margin_usd", "double")).alias("revenue_usd"),
        zero("customers").alias("customers"),
        zero("active_customers").alias("active_customers"),
        zero("active_cards").alias("active_cards"),
        zero("new_customers").alias("new_customers"),
        zero("notifications_sent").alias("notifications_sent"),
        zero("notifications_failed").alias("notifications_failed"),
        F.when(
            zero("notifications_sent") > 0,
            zero("notifications_failed") / zero("notifications_sent"),
        )
        .otherwise(F.lit(0.0))
        .alias("notification_fail_rate"),
        zero("fraud_reported_count").alias("fraud_reported_count"),
        F.when(zero("tx_count") > 0, zero("fraud_reported_count") / zero("tx_count"))
        .otherwise(F.lit(0.0))
        .alias("fraud_rate"),
    )


def kpi_state_monthly(fact_transactions_df: DataFrame) -> DataFrame:
    per_state = fact_transactions_df.groupBy(
        "month", F.coalesce("state", F.lit("unknown")).alias("state")
    ).agg(
        F.count(F.lit(1)).alias("tx_count"),
        F.coalesce(F.sum("amount_usd"), F.lit(0.0)).alias("value_usd"),
    )
    totals = fact_transactions_df.groupBy("month").agg(F.count(F.lit(1)).alias("_total"))
    return per_state.join(totals, on="month", how="inner").select(
        "month", "state", "tx_count", "value_usd", _share("tx_count", "_total").alias("count_share")
    )


def kpi_country_monthly(features_df: DataFrame) -> DataFrame:
    return (
        features_df.groupBy("month", F.coalesce("country", F.lit("UNKNOWN")).alias("country"))
        .agg(
            F.count(F.lit(1)).alias("customers"),
            F.count(F.when(F.col("is_active"), 1)).alias("active_customers"),
            F.count(F.when(F.col("tenure_months") == 0, 1)).alias("new_customers"),
            F.sum("tx_count").cast("long").alias("tx_count"),
            F.sum("spend_usd").alias("spend_usd"),
        )
        .select(
            "month",
            "country",
            "customers",
            "active_customers",
            "new_customers",
            "tx_count",
            "spend_usd",
        )
    )


def kpi_plan_monthly(features_df: DataFrame) -> DataFrame:
    per_plan = features_df.groupBy(
        "month", F.coalesce("plan_type", F.lit("unknown")).alias("plan_type")
    ).agg(F.count(F.lit(1)).alias("customers"))
    totals = features_df.groupBy("month").agg(F.count(F.lit(1)).alias("_total"))
    return per_plan.join(totals, on="month", how="inner").select(
        "month", "plan_type", "customers", _share("customers", "_total").alias("share")
    )

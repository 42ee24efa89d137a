"""``gold.kpi_model_monthly``: the monthly KPIs that depend on model outputs, computed by the
analysts' stage after the models, so one pipeline run gives final figures (gold's
``kpi_monthly`` no longer reads ``gold.fraud_alerts``, which the model stage writes after it).

Per month: fraud alerts raised, the alerted transactions later reported as fraud (alert
precision so far), the reported fraud the alerts caught (recall so far), distinct customers
alerted, the alerted value; customers in each risk tier.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


def kpi_model_monthly(
    fact_transactions_df: DataFrame, *, fraud_alerts_df: DataFrame, customer_risk_df: DataFrame
) -> DataFrame:
    """One row per month with transactions; alert and tier counts 0 where none were written,
    and alert months without scoring (no alerts table rows at all) have null alert figures."""
    scored_months = fraud_alerts_df.select("month").distinct().withColumn("_scored", F.lit(True))
    alerts = fraud_alerts_df.select("transaction_id", "customer_key", "amount_usd", "month")
    tx = fact_transactions_df.select(
        "transaction_id", "month", F.col("is_fraud_reported").alias("_reported")
    )
    joined = tx.join(
        alerts.select("transaction_id", F.lit(True).alias("_alerted")),
        on="transaction_id",
        how="left",
    )
    per_month = joined.groupBy("month").agg(
        F.count(F.when(F.col("_alerted"), 1)).alias("fraud_alert_count"),
        F.count(F.when(F.col("_alerted") & F.col("_reported"), 1)).alias("alerts_reported_fraud"),
        F.count(F.when(F.col("_reported"), 1)).alias("fraud_reported_count"),
    )
    alert_people = alerts.groupBy("month").agg(
        F.countDistinct("customer_key").alias("customers_alerted"),
        F.coalesce(F.sum("amount_usd"), F.lit(0.0)).alias("alert_value_usd"),
    )
    tiers = customer_risk_df.groupBy("month").agg(
        *[
            F.count(F.when(F.lower("tier") == t, 1)).alias(f"risk_{t}_customers")
            for t in ("high", "medium", "low")
        ]
    )
    out = (
        per_month.join(scored_months, on="month", how="left")
        .join(alert_people, on="month", how="left")
        .join(tiers, on="month", how="left")
    )
    scored = F.coalesce(F.col("_scored"), F.lit(False))

    def when_scored(value: F.Column) -> F.Column:
        return F.when(scored, value)

    return out.select(
        "month",
        scored.alias("fraud_scored"),
        when_scored(F.col("fraud_alert_count").cast("long")).alias("fraud_alert_count"),
        when_scored(F.col("alerts_reported_fraud").cast("long")).alias("alerts_reported_fraud"),
        when_scored(
            F.when(
                F.col("fraud_alert_count") > 0,
                F.col("alerts_reported_fraud") / F.col("fraud_alert_count"),
            ).otherwise(F.lit(0.0))
        ).alias("alert_precision"),
        when_scored(
            F.when(
                F.col("fraud_reported_count") > 0,
                F.col("alerts_reported_fraud") / F.col("fraud_reported_count"),
            ).otherwise(F.lit(0.0))
        ).alias("alert_recall"),
        when_scored(F.coalesce(F.col("customers_alerted"), F.lit(0)).cast("long")).alias(
            "customers_alerted"
        ),
        when_scored(F.coalesce(F.col("alert_value_usd"), F.lit(0.0))).alias("alert_value_usd"),
        *[
            F.coalesce(F.col(f"risk_{t}_customers"), F.lit(0))
            .cast("long")
            .alias(f"risk_{t}_customers")
            for t in ("high", "medium", "low")
        ],
    )

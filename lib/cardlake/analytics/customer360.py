"""``gold.customer_360``: one row per current customer, as of the latest month built.

Joins the golden record's profile (its columns keep their names, so the classification in
``conf/governance.yaml`` and the masked views apply to them as everywhere else), the month's
features, segment, RFM group, a lifetime value, the disengagement score, the risk tier with its
reasons, the month's fraud alerts and the last service contact. Current = on the books in that
month. Built incrementally: a month's run upserts the customers on the books that month and
deletes those who closed before it; a full run rebuilds from the latest month.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from cardlake.months import month_index

PROFILE = (
    "first_name",
    "last_name",
    "date_of_birth",
    "email",
    "phone",
    "city",
    "country",
    "plan_type",
    "join_date",
    "status",
    "income_bracket",
)
FEATURES = (
    "tenure_months",
    "age",
    "credit_score",
    "tx_count",
    "spend_usd",
    "recency_days",
    "frequency_12m",
    "monetary_12m_usd",
    "eng_count_3m",
    "eng_days_3m",
    "clv_estimate_usd",
)
INTERACTION_LOOKBACK_MONTHS = 3


def _latest(df: DataFrame, *, order: str = "month") -> DataFrame:
    # Each customer's latest row (by ``order``, ties broken by every column's natural order).
    rank = F.row_number().over(Window.partitionBy("customer_key").orderBy(F.desc(order)))
    return df.withColumn("_rank", rank).where(F.col("_rank") == 1).drop("_rank")


def customer_360(
    features_df: DataFrame,
    *,
    customers_df: DataFrame,
    segments_df: DataFrame,
    rfm_df: DataFrame,
    engagement_df: DataFrame,
    risk_df: DataFrame,
    alerts_df: DataFrame,
    interactions_df: DataFrame,
    clv_df: DataFrame | None = None,
) -> DataFrame:
    """One row per customer of ``features_df``'s latest month (pass one month's features).

    ``engagement_df`` and ``risk_df`` may hold several months: each customer's latest score up
    to the month is used (the models score the latest month only). ``interactions_df`` should
    hold the months up to the month; the last contact and those of the last
    ``INTERACTION_LOOKBACK_MONTHS`` months are reported.
    """
    month = features_df.agg(F.max("month").alias("month"))
    current = features_df.join(month, on="month", how="inner").select(
        "customer_key", "month", *FEATURES
    )
    as_of = current.select("customer_key", F.col("month").alias("_as_of"))

    def up_to(df: DataFrame) -> DataFrame:
        return (
            df.join(as_of, on="customer_key", how="inner")
            .where(F.col("month") <= F.col("_as_of"))
            .drop("_as_of")
        )

    profile = customers_df.select("customer_key", *PROFILE)
    segment = segments_df.select("customer_key", "month", "segment")
    rfm = rfm_df.select("customer_key", "month", "rfm_cell", "rfm_group")
    engagement = _latest(
        up_to(
            engagement_df.select(
                "customer_key", "month", F.col("score").alias("disengagement_score")
            )
        )
    )
    risk = _latest(
        up_to(
            risk_df.select(
                "customer_key",
                "month",
                "risk_score",
                F.col("tier").alias("risk_tier"),
                F.col("reasons").alias("risk_reasons"),
            )
        )
    ).drop("month")
    alerts = (
        alerts_df.join(month, on="month", how="inner")
        .groupBy("customer_key")
        .agg(
            F.count(F.lit(1)).alias("fraud_alerts_month"), F.max("ts").alias("last_fraud_alert_at")
        )
    )
    contacts = up_to(
        interactions_df.select(
            "customer_key", "month", "opened_at", "channel", F.col("type").alias("topic")
        )
    )
    last_contact = _latest(contacts, order="opened_at").select(
        "customer_key",
        F.col("opened_at").alias("last_contact_at"),
        F.col("channel").alias("last_contact_channel"),
        F.col("topic").alias("last_contact_topic"),
    )
    recent = (
        contacts.join(as_of, on="customer_key", how="inner")
        .where(
            month_index(F.col("_as_of")) - month_index(F.col("month")) < INTERACTION_LOOKBACK_MONTHS
        )
        .groupBy("customer_key")
        .agg(F.count(F.lit(1)).alias("contacts_3m"))
    )
    out = (
        current.join(profile, on="customer_key", how="left")
        .join(segment, on=["customer_key", "month"], how="left")
        .join(rfm, on=["customer_key", "month"], how="left")
        .join(engagement.drop("month"), on="customer_key", how="left")
        .join(risk, on="customer_key", how="left")
        .join(alerts, on="customer_key", how="left")
        .join(last_contact, on="customer_key", how="left")
        .join(recent, on="customer_key", how="left")
    )
    clv = F.col("clv_estimate_usd")
    if clv_df is not None:
        out = out.join(
            clv_df.select("customer_key", F.col("clv_usd").alias("_clv")),
            on="customer_key",
            how="left",
        )
        clv = F.coalesce(F.col("_clv"), clv)
    return out.select(
        "customer_key",
        F.col("month").alias("as_of_month"),
        *PROFILE,
        *[c for c in FEATURES if c != "clv_estimate_usd"],
        F.coalesce(F.col("segment"), F.lit("unsegmented")).alias("segment"),
        "rfm_cell",
        "rfm_group",
        clv.alias("clv_usd"),
        "disengagement_score",
        "risk_score",
        "risk_tier",
        "risk_reasons",
        F.coalesce(F.col("fraud_alerts_month"), F.lit(0)).cast("long").alias("fraud_alerts_month"),
        "last_fraud_alert_at",
        "last_contact_at",
        "last_contact_channel",
        "last_contact_topic",
        F.coalesce(F.col("contacts_3m"), F.lit(0)).cast("long").alias("contacts_3m"),
    )

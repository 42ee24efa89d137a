"""Fact tables (one row per transaction, interaction, product-usage record) and key checks.

Every foreign key resolves to a dimension row: a reference that matches nothing points at the
dimension's unknown member (``-1``), and :func:`foreign_key_violations` proves it before a write.
The customer key is point-in-time: the ``dim_customer`` version valid on the event's day.
"""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from cardlake.gold.config import RevenueConfig
from cardlake.gold.dims import (
    UNKNOWN_SK,
    date_sk,
    location_sk,
    product_sk,
    surrogate_key,
)
from cardlake.months import month_start


def _resolved(
    key: Column, dim_df: DataFrame, dim_key: str, fact_df: DataFrame, alias: str
) -> DataFrame:
    # Left join on the computed key; keys absent from the dimension become the unknown member.
    known = dim_df.select(F.col(dim_key).alias(f"_{alias}_known"))
    joined = fact_df.withColumn(f"_{alias}_candidate", key).join(
        known, on=F.col(f"_{alias}_candidate") == F.col(f"_{alias}_known"), how="left"
    )
    return joined.withColumn(alias, F.coalesce(F.col(f"_{alias}_known"), F.lit(UNKNOWN_SK))).drop(
        f"_{alias}_candidate", f"_{alias}_known"
    )


def with_customer_sk(
    fact_df: DataFrame, *, dim_customer_df: DataFrame, on_date: Column
) -> DataFrame:
    """Adds ``customer_sk``: the customer's version valid on ``on_date`` (else unknown)."""
    versions = dim_customer_df.where(F.col("customer_sk") != UNKNOWN_SK).select(
        F.col("customer_key").alias("_ck"),
        F.col("customer_sk").alias("_csk"),
        F.col("effective_from").alias("_from"),
        F.col("effective_to").alias("_to"),
    )
    fact = fact_df.withColumn("_on", on_date)
    joined = fact.join(
        versions,
        on=(F.col("customer_key") == F.col("_ck"))
        & F.col("_on").between(F.col("_from"), F.col("_to")),
        how="left",
    )
    return joined.withColumn("customer_sk", F.coalesce(F.col("_csk"), F.lit(UNKNOWN_SK))).drop(
        "_ck", "_csk", "_from", "_to", "_on"
    )


def revenue_columns(df: DataFrame, *, revenue: RevenueConfig) -> DataFrame:
    """Adds ``fee_usd`` and ``fx_margin_usd`` of completed transactions (0 otherwise)."""
    completed = F.col("state") == "completed"
    fees = revenue.fee_usd_by_channel
    fee = F.lit(0.0)
    if fees:
        fee_map = F.create_map(*[x for k, v in fees.items() for x in (F.lit(k), F.lit(float(v)))])
        fee = F.coalesce(fee_map[F.col("channel")], F.lit(0.0))
    homes = revenue.home_currency_by_country
    home_map = F.create_map(*[x for k, v in homes.items() for x in (F.lit(k), F.lit(v))])
    home = home_map[F.col("customer_country")]
    cross_currency = (F.col("channel") == "FX") | (home.isNotNull() & (F.col("currency") != home))
    return df.withColumn("fee_usd", F.when(completed, fee).otherwise(F.lit(0.0))).withColumn(
        "fx_margin_usd",
        F.when(
            completed & cross_currency,
            F.coalesce(F.col("amount_usd"), F.lit(0.0)) * F.lit(revenue.fx_margin_rate),
        ).otherwise(F.lit(0.0)),
    )


def fact_transactions(
    transactions_df: DataFrame,
    *,
    dim_customer_df: DataFrame,
    dim_account_df: DataFrame,
    dim_card_df: DataFrame,
    dim_merchant_df: DataFrame,
    dim_channel_df: DataFrame,
    dim_location_df: DataFrame,
    revenue: RevenueConfig,
) -> DataFrame:
    """One row per transaction with resolved keys, measures, fee and FX-margin revenue."""
    df = with_customer_sk(
        transactions_df,
        dim_customer_df=dim_customer_df,
        on_date=F.coalesce(F.col("txn_date"), month_start(F.col("month"))),
    )
    is_card = F.col("instrument_type") == "card"
    df = _resolved(
        F.when(~is_card, surrogate_key("account", F.col("instrument_id"))),
        dim_account_df,
        "account_sk",
        df,
        "account_sk",
    )
    df = _resolved(
        F.when(is_card, surrogate_key("card", F.col("instrument_id"))),
        dim_card_df,
        "card_sk",
        df,
        "card_sk",
    )
    df = _resolved(
        surrogate_key("merchant", F.col("merchant_id")),
        dim_merchant_df,
        "merchant_sk",
        df,
        "merchant_sk",
    )
    df = _resolved(
        surrogate_key("channel", F.col("channel")), dim_channel_df, "channel_sk", df, "channel_sk"
    )
    no_city = F.lit(None).cast("string")
    df = _resolved(
        location_sk(F.col("merchant_country"), no_city, no_city),
        dim_location_df,
        "location_sk",
        df,
        "merchant_location_sk",
    )
    df = revenue_columns(df, revenue=revenue)
    return df.select(
        "transaction_id",
        "customer_sk",
        "account_sk",
        "card_sk",
        "merchant_sk",
        "channel_sk",
        "merchant_location_sk",
        date_sk(F.col("txn_date")).alias("date_sk"),
        "customer_key",
        "instrument_type",
        "ts",
        "amount",
        "currency",
        "amount_usd",
        "channel",
        "direction",
        "state",
        "mcc",
        "merchant_country",
        "customer_country",
        "is_night",
        "is_cross_border",
        F.col("fraud_reported_at").isNotNull().alias("is_fraud_reported"),
        "fee_usd",
        "fx_margin_usd",
        (F.col("fee_usd") + F.col("fx_margin_usd")).alias("revenue_usd"),
        "month",
    )


def fact_interactions(
    interactions_df: DataFrame, *, dim_customer_df: DataFrame, dim_channel_df: DataFrame
) -> DataFrame:
    """One row per service interaction; resolved means resolved by the month's end."""
    df = with_customer_sk(
        interactions_df,
        dim_customer_df=dim_customer_df,
        on_date=F.coalesce(F.to_date("opened_at"), month_start(F.col("month"))),
    )
    df = _resolved(
        surrogate_key("channel", F.col("channel")), dim_channel_df, "channel_sk", df, "channel_sk"
    )
    return df.select(
        "interaction_id",
        "customer_sk",
        "channel_sk",
        date_sk(F.to_date("opened_at")).alias("date_sk"),
        "customer_key",
        F.col("type").alias("interaction_type"),
        "opened_at",
        "resolved_at",
        "resolution_hours",
        F.col("resolved_at").isNotNull().alias("is_resolved"),
        "month",
    )


def fact_product_usage(
    usage_df: DataFrame, *, dim_customer_df: DataFrame, dim_product_df: DataFrame
) -> DataFrame:
    """One row per app user, product and month."""
    df = with_customer_sk(
        usage_df, dim_customer_df=dim_customer_df, on_date=month_start(F.col("month"))
    )
    df = _resolved(
        product_sk("app", F.col("product")), dim_product_df, "product_sk", df, "product_sk"
    )
    return df.select(
        "usage_id",
        "customer_sk",
        "product_sk",
        date_sk(F.col("last_seen")).alias("date_sk"),
        "customer_key",
        "product",
        F.col("sessions").cast("long").alias("sessions"),
        "minutes",
        "last_seen",
        "device_os",
        "month",
    )


def foreign_key_violations(
    fact_df: DataFrame, *, references: Mapping[str, tuple[DataFrame, str]]
) -> dict[str, int]:
    """Per foreign-key column, how many fact rows point at no dimension row (all should be 0).

    One Spark job for all the keys: each dimension's keys are left-joined and the misses counted.
    """
    checked = fact_df
    misses = []
    for i, (column, (dim_df, dim_key)) in enumerate(references.items()):
        keys = dim_df.select(F.col(dim_key).alias(f"_key{i}"), F.lit(True).alias(f"_hit{i}"))
        checked = checked.join(keys, on=F.col(column) == F.col(f"_key{i}"), how="left")
        misses.append(F.count(F.when(F.col(f"_hit{i}").isNull(), 1)).alias(column))
    row = checked.agg(*misses).collect()[0]
    return {column: int(row[column]) for column in references}

"""Cleaned activity and reference tables: transactions, interactions, marketing, usage, ...

Transforms only: each takes bronze DataFrames and the lookups it needs, and ends in a select
that is the silver contract (:mod:`cardlake.silver.schemas`).
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from cardlake.er import standardise as S
from cardlake.silver import schemas

NIGHT_HOURS = (0, 6)  # [start, end) local hour; timestamps are UTC in this lake
CHANNELS = {
    "pos": "POS",
    "atm": "ATM",
    "online": "ONLINE",
    "p2p": "P2P",
    "top-up": "TOPUP",
    "topup": "TOPUP",
    "fx": "FX",
    "crypto": "CRYPTO",
    "stock": "STOCK",
}


def first_delivery(df: DataFrame, *, keys: Sequence[str]) -> DataFrame:
    """One row per key: the earliest delivery (bronze keeps re-sent records apart by file)."""
    order = Window.partitionBy(*keys).orderBy(
        F.asc("ingest_month"), F.asc("_source_file"), F.asc("_line")
    )
    return df.withColumn("_rank", F.row_number().over(order)).filter("_rank = 1").drop("_rank")


def latest_delivery(df: DataFrame, *, keys: Sequence[str]) -> DataFrame:
    """One row per key: the newest delivery (reference data that changes over time)."""
    order = Window.partitionBy(*keys).orderBy(
        F.desc("ingest_month"), F.desc("_source_file"), F.desc("_line")
    )
    return df.withColumn("_rank", F.row_number().over(order)).filter("_rank = 1").drop("_rank")


def normalised_channel(col: Column) -> Column:
    """Channel names as one vocabulary: POS, ATM, ONLINE, P2P, TOPUP, FX, CRYPTO, STOCK."""
    mapping = F.create_map(*[F.lit(x) for kv in CHANNELS.items() for x in kv])
    lowered = F.lower(F.trim(col))
    return F.coalesce(mapping[lowered], F.upper(lowered))


def fx_rates(bronze_fx: DataFrame) -> DataFrame:
    """silver.fx_rates: one rate per day and currency."""
    return latest_delivery(bronze_fx, keys=["date", "currency"]).select(
        *schemas.FX_RATES.fieldNames()
    )


def merchants(bronze_merchants: DataFrame) -> DataFrame:
    """silver.merchants: the latest description of each merchant."""
    return latest_delivery(bronze_merchants, keys=["merchant_id"]).select(
        "merchant_id",
        F.trim("name").alias("name"),
        "mcc",
        F.lower("category").alias("category"),
        F.upper("country").alias("country"),
        "city",
        F.col("online").cast("boolean"),
        "opened_on",
    )


def transactions(
    bronze_tx: DataFrame,
    *,
    instruments: DataFrame,
    fx: DataFrame,
    customers: DataFrame,
    chargebacks: DataFrame,
) -> DataFrame:
    """silver.transactions: typed, deduplicated, in USD, keyed to customers, flagged.

    Args:
        bronze_tx: bronze.card_transactions (card and wallet feeds).
        instruments: ``(instrument_id, customer_key)`` for card tokens and wallet ids.
        fx: silver.fx_rates.
        customers: ``(customer_key, country)``: the customer's home country.
        chargebacks: bronze.chargebacks (``transaction_id``, ``reported_at``).
    """
    tx = first_delivery(bronze_tx, keys=["transaction_id"])
    reports = chargebacks.groupBy("transaction_id").agg(
        F.min("reported_at").alias("fraud_reported_at")
    )
    is_card = F.col("card_token").isNotNull()
    hour = F.hour("timestamp")
    enriched = (
        tx.withColumn("instrument_type", F.when(is_card, "card").otherwise("wallet"))
        .withColumn("instrument_id", F.coalesce("card_token", "wallet_id"))
        .withColumn("txn_date", F.to_date("timestamp"))
        .join(instruments, on="instrument_id", how="left")
        .join(
            fx.select(F.col("date").alias("txn_date"), "currency", "units_per_usd"),
            on=["txn_date", "currency"],
            how="left",
        )
        .join(
            customers.select("customer_key", F.col("country").alias("customer_country")),
            on="customer_key",
            how="left",
        )
        .join(reports, on="transaction_id", how="left")
    )
    abroad = F.coalesce(F.col("merchant_country"), F.col("ip_country"))
    return enriched.select(
        "transaction_id",
        "customer_key",
        "instrument_type",
        "instrument_id",
        F.col("timestamp").alias("ts"),
        "txn_date",
        F.col("amount").cast(schemas.AMOUNT).alias("amount"),
        F.upper("currency").alias("currency"),
        "units_per_usd",
        (F.col("amount").cast("double") / F.col("units_per_usd")).alias("amount_usd"),
        "merchant_id",
        "mcc",
        F.upper("merchant_country").alias("merchant_country"),
        "customer_country",
        normalised_channel(F.col("channel")).alias("channel"),
        F.lower(F.trim("direction")).alias("direction"),
        F.lower(F.trim("state")).alias("state"),
        "device_id",
        F.upper("ip_country").alias("ip_country"),
        ((hour >= NIGHT_HOURS[0]) & (hour < NIGHT_HOURS[1])).alias("is_night"),
        F.coalesce(abroad != F.col("customer_country"), F.lit(False)).alias("is_cross_border"),
        "fraud_reported_at",
        F.date_format("timestamp", "yyyy-MM").alias("month"),
    )


def interactions(bronze_service: DataFrame, *, refs: DataFrame) -> DataFrame:
    """silver.interactions: each service contact keyed to its customer through its ``ref``.

    Args:
        bronze_service: bronze.service_interactions.
        refs: ``(ref_kind, ref_value, customer_key)`` with kinds ``crm`` (a crm_id), ``email``
            (canonical mailbox) and ``phone`` (E.164).
    """
    rows = first_delivery(bronze_service, keys=["interaction_id"])
    ref = F.trim("ref")
    kind = (
        F.when(ref.rlike(r"^CRM-\d+$"), "crm").when(ref.contains("@"), "email").otherwise("phone")
    )
    value = (
        F.when(kind == "crm", ref)
        .when(kind == "email", S.canonical_email(ref))
        .otherwise(S.e164_phone(ref, F.lit(None).cast("string"), default_region="GB"))
    )
    # A shared household phone can name two customers: such a ref stays unresolved.
    unique_refs = (
        refs.groupBy("ref_kind", "ref_value")
        .agg(
            F.min("customer_key").alias("customer_key"),
            F.countDistinct("customer_key").alias("owners"),
        )
        .filter("owners = 1")
        .drop("owners")
    )
    keyed = (
        rows.withColumn("ref_kind", kind)
        .withColumn("ref_value", value)
        .join(unique_refs, on=["ref_kind", "ref_value"], how="left")
    )
    return keyed.select(
        "interaction_id",
        "customer_key",
        F.lower("channel").alias("channel"),
        F.lower("interaction_type").alias("type"),
        "opened_at",
        "resolved_at",
        ((F.unix_timestamp("resolved_at") - F.unix_timestamp("opened_at")) / 3600.0).alias(
            "resolution_hours"
        ),
        F.regexp_replace(F.trim("note"), r"\s+", " ").alias("note"),
        F.date_format("opened_at", "yyyy-MM").alias("month"),
    )


HELD_BACK_REASON = "no_customer_source"
"""Why silver.unresolved_activity holds a row: its record's entity has no customer source."""


def _held(held_back: DataFrame, source: str, key: str) -> DataFrame:
    """The keys (``key``) of ``source``'s held-back records, one row each."""
    return (
        held_back.filter(F.col("source") == source)
        .select(F.col("source_record_id").alias(key))
        .dropDuplicates([key])  # a record delivered with several identities is one key
    )


def marketing_monthly(
    bronze_marketing: DataFrame, *, keys: DataFrame, held_back: DataFrame
) -> DataFrame:
    """silver.marketing_monthly, keyed through the crosswalk (``contact_id`` → customer_key).

    Args:
        bronze_marketing: bronze.marketing_monthly.
        keys: the current crosswalk rows of marketing contacts.
        held_back: ``(source, source_record_id)`` of held-back records: their rows are in
            :func:`unresolved_activity` instead.
    """
    rows = first_delivery(bronze_marketing, keys=["contact_id", "month"]).join(
        _held(held_back, "marketing_monthly", "contact_id"), on="contact_id", how="left_anti"
    )
    keyed = rows.join(
        keys.select(F.col("source_record_id").alias("contact_id"), "customer_key"),
        on="contact_id",
        how="left",
    )
    return keyed.select(
        "customer_key",
        "month",
        F.lower("plan_type").alias("plan_type"),
        F.col("plan_changed").cast("boolean"),
        F.col("device_changed").cast("boolean"),
        F.col("notifications_sent").cast("int"),
        F.col("notifications_failed").cast("int"),
        F.col("notifications_opened").cast("int"),
        F.lower("campaign").alias("campaign"),
        F.col("opted_in").cast("boolean"),
    )


def product_usage(bronze_usage: DataFrame, *, keys: DataFrame, held_back: DataFrame) -> DataFrame:
    """silver.product_usage, keyed through the crosswalk (``app_user_id`` → customer_key).

    Args:
        bronze_usage: bronze.product_usage.
        keys: the current crosswalk rows of app users.
        held_back: ``(source, source_record_id)`` of held-back records: their rows are in
            :func:`unresolved_activity` instead.
    """
    rows = first_delivery(bronze_usage, keys=["usage_id"]).join(
        _held(held_back, "product_usage", "app_user_id"), on="app_user_id", how="left_anti"
    )
    keyed = rows.join(
        keys.select(F.col("source_record_id").alias("app_user_id"), "customer_key"),
        on="app_user_id",
        how="left",
    )
    return keyed.select(
        "usage_id",
        "customer_key",
        "month",
        F.lower("product").alias("product"),
        F.col("sessions").cast("int"),
        F.col("minutes").cast("double"),
        "last_seen",
        F.lower("device_os").alias("device_os"),
    )


def unresolved_activity(
    bronze_usage: DataFrame, bronze_marketing: DataFrame, *, held_back: DataFrame
) -> DataFrame:
    """silver.unresolved_activity: the rows :func:`product_usage` and :func:`marketing_monthly`
    leave out because their record is held back, one per row they would have kept.

    Args:
        bronze_usage: bronze.product_usage.
        bronze_marketing: bronze.marketing_monthly.
        held_back: ``(source, source_record_id)`` of the held-back records.
    """
    usage = first_delivery(bronze_usage, keys=["usage_id"]).join(
        _held(held_back, "product_usage", "app_user_id"), on="app_user_id", how="left_semi"
    )
    marketing = first_delivery(bronze_marketing, keys=["contact_id", "month"]).join(
        _held(held_back, "marketing_monthly", "contact_id"), on="contact_id", how="left_semi"
    )
    reason = F.lit(HELD_BACK_REASON).alias("reason")
    return usage.select(
        F.lit("product_usage").alias("source"),
        F.col("app_user_id").alias("source_record_id"),
        F.col("usage_id").alias("row_id"),
        "month",
        reason,
    ).unionByName(
        marketing.select(
            F.lit("marketing_monthly").alias("source"),
            F.col("contact_id").alias("source_record_id"),
            F.concat_ws(":", "contact_id", "month").alias("row_id"),
            "month",
            reason,
        )
    )


def financial_children(bronze_fin: DataFrame, *, keys: DataFrame) -> dict[str, DataFrame]:
    """silver.accounts, silver.cards and silver.debts from each customer's latest record."""
    latest = latest_delivery(bronze_fin, keys=["fin_id"]).join(
        keys.select(F.col("source_record_id").alias("fin_id"), "customer_key"),
        on="fin_id",
        how="left",
    )
    accounts = latest.select("customer_key", "updated_at", F.explode("accounts").alias("a"))
    cards = latest.select("customer_key", F.explode("cards").alias("c"))
    debts = latest.select("customer_key", F.explode("debts").alias("d"))
    return {
        "accounts": accounts.select(
            F.col("a.account_id").alias("account_id"),
            "customer_key",
            F.col("a.type").alias("type"),
            F.col("a.currency").alias("currency"),
            F.to_date("a.opened").alias("opened"),
            F.col("a.balance").alias("balance"),
            F.col("updated_at").alias("as_of"),
        ),
        "cards": cards.select(
            F.col("c.card_token").alias("card_id"),
            "customer_key",
            F.col("c.network").alias("network"),
            F.col("c.type").alias("type"),
            F.col("c.last4").alias("last4"),
            F.to_date("c.issued").alias("issued"),
            F.col("c.status").alias("status"),
        ),
        "debts": debts.select(
            F.col("d.debt_id").alias("debt_id"),
            "customer_key",
            F.col("d.type").alias("type"),
            F.col("d.principal").alias("principal"),
            F.col("d.outstanding").alias("outstanding"),
            F.col("d.interest_rate").alias("interest_rate"),
            F.col("d.status").alias("status"),
            F.to_date("d.opened").alias("opened"),
        ),
    }

"""Star-schema dimensions: surrogate keys, an "unknown" member each, and type-2 ``dim_customer``.

Surrogate keys are 64-bit hashes of the dimension's natural key (plus ``effective_from`` for
customer versions), so a rebuild gives the same keys and facts never need a lookup table to stay
stable. Every dimension carries an unknown member with key ``-1``; a fact whose reference does
not resolve points at it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import StructField, StructType

from cardlake.months import month_start

UNKNOWN_SK = -1
UNKNOWN = "UNKNOWN"
OPEN_END = dt.date(9999, 12, 31)
UNKNOWN_FROM = dt.date(1900, 1, 1)

TRANSACTION_CHANNELS = ("POS", "ATM", "ONLINE", "P2P", "TOPUP", "FX", "CRYPTO", "STOCK")
SERVICE_CHANNELS = ("phone", "chat", "email", "branch")

# A change in any of these between two month-end snapshots opens a new dim_customer version.
SCD2_TRACKED = (
    "first_name",
    "last_name",
    "email",
    "phone",
    "date_of_birth",
    "gender",
    "marital_status",
    "education",
    "occupation",
    "income_bracket",
    "street",
    "city",
    "postcode",
    "country",
    "plan_type",
    "status",
    "closed_month",
)


def surrogate_key(kind: str, *cols: Column) -> Column:
    """A stable 64-bit key for ``kind`` (the dimension) and its natural key columns."""
    parts = [F.coalesce(c.cast("string"), F.lit("\u0000")) for c in cols]
    return F.xxhash64(F.lit(kind), *parts)


def location_sk(country: Column, city: Column, postcode: Column) -> Column:
    """The location of an address, a city or a country; unknown without a country."""
    key = surrogate_key("location", country, city, postcode)
    return F.when(country.isNull(), F.lit(UNKNOWN_SK)).otherwise(key)


def product_sk(product_type: str, product: Column) -> Column:
    key = surrogate_key("product", F.lit(product_type), product)
    return F.when(product.isNull(), F.lit(UNKNOWN_SK)).otherwise(key)


def plan_sk(plan_type: Column) -> Column:
    return product_sk("plan", plan_type)


def with_unknown_member(df: DataFrame, *, unknown: Mapping[str, object]) -> DataFrame:
    """Appends the unknown member (``unknown`` names its values; other columns stay null)."""
    spark = df.sparkSession
    row = tuple(unknown.get(field.name) for field in df.schema.fields)
    nullable = StructType([StructField(f.name, f.dataType, True) for f in df.schema.fields])
    member = spark.createDataFrame([row], schema=nullable)
    return df.where(F.col(df.columns[0]) != F.lit(UNKNOWN_SK)).unionByName(member)


# -- dim_customer (type 2) ----------------------------------------------------------------------

DIM_CUSTOMER_COLUMNS = (
    "customer_sk",
    "customer_key",
    "crm_ids",
    "first_name",
    "last_name",
    "email",
    "phone",
    "date_of_birth",
    "gender",
    "marital_status",
    "education_level",
    "occupation",
    "income_bracket",
    "join_date",
    "last_updated",
    "data_source",
    "is_active",
    "status",
    "closed_month",
    "street",
    "city",
    "postcode",
    "country",
    "location_sk",
    "plan_type",
    "plan_sk",
    "attr_hash",
    "effective_from",
    "effective_to",
    "is_current",
)


def customer_version_rows(snapshots_df: DataFrame) -> DataFrame:
    """Each snapshot as a candidate dim_customer version starting at its month's first day."""
    tracked = F.struct(*[F.col(c) for c in SCD2_TRACKED])
    return snapshots_df.where(F.col("customer_key").isNotNull()).select(
        "customer_key",
        "crm_ids",
        "first_name",
        "last_name",
        "email",
        "phone",
        "date_of_birth",
        "gender",
        "marital_status",
        F.col("education").alias("education_level"),
        "occupation",
        "income_bracket",
        "join_date",
        F.col("updated_at").alias("last_updated"),
        F.col("data_sources").alias("data_source"),
        (F.col("status") == "active").alias("is_active"),
        "status",
        "closed_month",
        "street",
        "city",
        "postcode",
        "country",
        location_sk(F.col("country"), F.col("city"), F.col("postcode")).alias("location_sk"),
        "plan_type",
        plan_sk(F.col("plan_type")).alias("plan_sk"),
        F.sha2(F.to_json(tracked), 256).alias("attr_hash"),
        month_start(F.col("month")).alias("effective_from"),
    )


def customer_changes(version_rows_df: DataFrame) -> DataFrame:
    """Keeps a customer's first row and every row whose tracked attributes differ from the last."""
    by_customer = Window.partitionBy("customer_key").orderBy("effective_from")
    previous = F.lag("attr_hash").over(by_customer)
    return (
        version_rows_df.withColumn("_previous", previous)
        .where(F.col("_previous").isNull() | ~F.col("_previous").eqNullSafe(F.col("attr_hash")))
        .drop("_previous")
    )


def with_validity(versions_df: DataFrame) -> DataFrame:
    """Adds the key, ``effective_to`` (the day before the next version) and ``is_current``."""
    by_customer = Window.partitionBy("customer_key").orderBy("effective_from")
    following = F.lead("effective_from").over(by_customer)
    return versions_df.withColumn("_next", following).select(
        surrogate_key("customer", F.col("customer_key"), F.col("effective_from")).alias(
            "customer_sk"
        ),
        *[
            c
            for c in DIM_CUSTOMER_COLUMNS
            if c not in ("customer_sk", "effective_to", "is_current")
        ],
        F.coalesce(F.date_sub(F.col("_next"), 1), F.lit(OPEN_END)).alias("effective_to"),
        F.col("_next").isNull().alias("is_current"),
    )


CUSTOMER_UNKNOWN = {
    "customer_sk": UNKNOWN_SK,
    "customer_key": UNKNOWN,
    "location_sk": UNKNOWN_SK,
    "plan_sk": UNKNOWN_SK,
    "effective_from": UNKNOWN_FROM,
    "effective_to": OPEN_END,
    "is_current": True,
    "is_active": False,
}


def dim_customer_full(snapshots_df: DataFrame) -> DataFrame:
    """Every version of every customer from the whole snapshot history."""
    versions = customer_changes(customer_version_rows(snapshots_df))
    return with_unknown_member(with_validity(versions), unknown=CUSTOMER_UNKNOWN)


def dim_customer_month(
    snapshots_df: DataFrame, *, dim_customer_df: DataFrame, month: str
) -> tuple[DataFrame, DataFrame]:
    """The type-2 changes that ``month``'s snapshot makes to the current dim_customer.

    Returns:
        ``(upserts, stale)``: versions to insert or update (every version of the customers
        touched, with validity recomputed) and versions to delete (opened by an earlier
        run of this month that the snapshot no longer supports).
    """
    start = dt.date.fromisoformat(f"{month}-01")
    existing = dim_customer_df.where(F.col("customer_sk") != UNKNOWN_SK).drop(
        "customer_sk", "effective_to", "is_current"
    )
    before = existing.where(F.col("effective_from") < F.lit(start))
    at_month = existing.where(F.col("effective_from") == F.lit(start))
    latest = Window.partitionBy("customer_key").orderBy(F.col("effective_from").desc())
    last_before = (
        before.withColumn("_rank", F.row_number().over(latest))
        .where(F.col("_rank") == 1)
        .select("customer_key", F.col("attr_hash").alias("_prior_hash"))
    )
    candidates = customer_version_rows(snapshots_df.where(F.col("month") == month))
    opened = (
        candidates.join(last_before, on="customer_key", how="left")
        .where(~F.col("_prior_hash").eqNullSafe(F.col("attr_hash")))
        .drop("_prior_hash")
    )
    touched = (
        opened.select("customer_key")
        .unionByName(at_month.select("customer_key"))
        .groupBy("customer_key")
        .agg(F.lit(1).alias("_touched"))
    )
    kept = existing.where(F.col("effective_from") != F.lit(start)).join(
        touched, on="customer_key", how="left_semi"
    )
    upserts = with_validity(kept.unionByName(opened))
    stale = dim_customer_df.where(F.col("effective_from") == F.lit(start)).join(
        upserts.select("customer_sk"), on="customer_sk", how="left_anti"
    )
    return upserts, stale


# -- reference and conformed dimensions -----------------------------------------------------


def dim_account(accounts_df: DataFrame) -> DataFrame:
    out = accounts_df.where(F.col("account_id").isNotNull()).select(
        surrogate_key("account", F.col("account_id")).alias("account_sk"),
        "account_id",
        "customer_key",
        F.col("type").alias("account_type"),
        "currency",
        F.col("opened").alias("opened_on"),
        F.col("balance").alias("balance"),
        F.col("as_of").alias("balance_as_of"),
    )
    return with_unknown_member(out, unknown={"account_sk": UNKNOWN_SK, "account_id": UNKNOWN})


def dim_card(cards_df: DataFrame) -> DataFrame:
    out = cards_df.where(F.col("card_id").isNotNull()).select(
        surrogate_key("card", F.col("card_id")).alias("card_sk"),
        "card_id",
        "customer_key",
        "network",
        F.col("type").alias("card_type"),
        "last4",
        F.col("issued").alias("issued_on"),
        "status",
    )
    return with_unknown_member(out, unknown={"card_sk": UNKNOWN_SK, "card_id": UNKNOWN})


def dim_merchant(merchants_df: DataFrame, *, discretionary_mccs: Sequence[str]) -> DataFrame:
    out = merchants_df.where(F.col("merchant_id").isNotNull()).select(
        surrogate_key("merchant", F.col("merchant_id")).alias("merchant_sk"),
        "merchant_id",
        F.col("name").alias("merchant_name"),
        "mcc",
        "category",
        F.coalesce(F.col("mcc").isin(*discretionary_mccs), F.lit(False)).alias("is_discretionary"),
        "country",
        "city",
        location_sk(F.col("country"), F.col("city"), F.lit(None)).alias("location_sk"),
        "online",
        "opened_on",
    )
    return with_unknown_member(
        out, unknown={"merchant_sk": UNKNOWN_SK, "merchant_id": UNKNOWN, "location_sk": UNKNOWN_SK}
    )


def dim_date(spark: SparkSession, *, start: dt.date, end: dt.date) -> DataFrame:
    """One row per calendar day; ``date_sk`` is ``yyyymmdd``."""
    days = spark.sql(
        f"SELECT explode(sequence(DATE'{start.isoformat()}', DATE'{end.isoformat()}')) AS d"
    )
    out = days.select(
        F.date_format("d", "yyyyMMdd").cast("int").alias("date_sk"),
        F.col("d").alias("date"),
        F.year("d").alias("year"),
        F.quarter("d").alias("quarter"),
        F.date_format("d", "yyyy-MM").alias("month"),
        F.month("d").alias("month_of_year"),
        F.dayofmonth("d").alias("day_of_month"),
        F.date_format("d", "EEEE").alias("day_name"),
        ((F.dayofweek("d") + 5) % 7 + 1).alias("iso_day_of_week"),
        F.dayofweek("d").isin(1, 7).alias("is_weekend"),
    )
    return with_unknown_member(out, unknown={"date_sk": UNKNOWN_SK, "day_name": UNKNOWN})


def date_sk(col: Column) -> Column:
    return F.coalesce(F.date_format(col, "yyyyMMdd").cast("int"), F.lit(UNKNOWN_SK))


def dim_channel(spark: SparkSession, *, fee_usd_by_channel: Mapping[str, float]) -> DataFrame:
    rows = [(c, "transaction", float(fee_usd_by_channel.get(c, 0.0))) for c in TRANSACTION_CHANNELS]
    rows += [(c, "service", 0.0) for c in SERVICE_CHANNELS]
    out = spark.createDataFrame(rows, "channel string, channel_group string, fee_usd double")
    out = out.select(
        surrogate_key("channel", F.col("channel")).alias("channel_sk"),
        "channel",
        "channel_group",
        "fee_usd",
    )
    return with_unknown_member(out, unknown={"channel_sk": UNKNOWN_SK, "channel": UNKNOWN})


def dim_location(
    snapshots_df: DataFrame, *, transactions_df: DataFrame, merchants_df: DataFrame
) -> DataFrame:
    """Customer addresses, merchant cities and every country seen (city and postcode null)."""
    addresses = snapshots_df.select("country", "city", "postcode", F.lit("address").alias("level"))
    cities = merchants_df.select(
        "country",
        "city",
        F.lit(None).cast("string").alias("postcode"),
        F.lit("city").alias("level"),
    )
    no_city = F.lit(None).cast("string")
    countries = (
        snapshots_df.select("country")
        .unionByName(merchants_df.select("country"))
        .unionByName(transactions_df.select(F.col("merchant_country").alias("country")))
        .unionByName(transactions_df.select(F.col("customer_country").alias("country")))
        .select(
            "country",
            no_city.alias("city"),
            no_city.alias("postcode"),
            F.lit("country").alias("level"),
        )
    )
    out = (
        addresses.unionByName(cities)
        .unionByName(countries)
        .where(F.col("country").isNotNull())
        .groupBy("country", "city", "postcode")
        .agg(F.min("level").alias("level"))  # "address" < "city" < "country"
        .select(
            location_sk(F.col("country"), F.col("city"), F.col("postcode")).alias("location_sk"),
            "country",
            "city",
            "postcode",
            "level",
        )
    )
    return with_unknown_member(out, unknown={"location_sk": UNKNOWN_SK, "country": UNKNOWN})


def dim_product(
    snapshots_df: DataFrame, *, product_usage_df: DataFrame, marketing_df: DataFrame
) -> DataFrame:
    """Plans (the customer's commercial segment) and app products."""
    plans = (
        snapshots_df.select(F.col("plan_type").alias("product"))
        .unionByName(marketing_df.select(F.col("plan_type").alias("product")))
        .select("product", F.lit("plan").alias("product_type"))
    )
    apps = product_usage_df.select("product", F.lit("app").alias("product_type"))
    out = (
        plans.unionByName(apps)
        .where(F.col("product").isNotNull())
        .groupBy("product_type", "product")
        .agg(F.count(F.lit(1)).alias("_n"))
        .select(
            surrogate_key("product", F.col("product_type"), F.col("product")).alias("product_sk"),
            "product",
            "product_type",
        )
    )
    return with_unknown_member(out, unknown={"product_sk": UNKNOWN_SK, "product": UNKNOWN})

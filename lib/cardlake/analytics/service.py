"""Service analytics from ``silver.interactions``.

- ``gold.kpi_service_monthly``, one row per month, channel and topic, with ``all`` rows for
  every channel, every topic and both: contacts, distinct customers, contacts per customer,
  resolution time (median and 90th percentile, hours, of contacts resolved), the share
  resolved, repeat contacts (a contact by a customer who had another one in the 7 days before
  it, whatever its channel or topic) and the complaint rate (share of contacts whose topic is a
  complaint). The topic is the agent's category field.
- ``gold.kpi_service_workload``, one row per month, weekday and hour of the day (UTC) the
  contact was opened: contacts, the average per occurrence of that weekday in the month, and
  the hours to resolution they carried, for capacity planning.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from cardlake.months import month_end, month_start

ALL = "all"
REPEAT_WINDOW_DAYS = 7
COMPLAINT_TOPICS = ("fees_complaint", "dispute_charge")
SECONDS_PER_DAY = 86_400


def with_repeat_flag(interactions_df: DataFrame, *, days: int = REPEAT_WINDOW_DAYS) -> DataFrame:
    """Adds ``is_repeat``: the same customer opened another contact in the ``days`` before this
    one (ties in time count, once: the later row in interaction-id order is the repeat)."""
    previous = F.lag("opened_at").over(
        Window.partitionBy("customer_key").orderBy("opened_at", "interaction_id")
    )
    gap = F.unix_timestamp("opened_at") - F.unix_timestamp(previous)
    return interactions_df.withColumn(
        "is_repeat",
        F.coalesce(
            F.col("customer_key").isNotNull() & (gap <= days * SECONDS_PER_DAY), F.lit(False)
        ),
    )


def kpi_service_monthly(
    interactions_df: DataFrame,
    *,
    months: Sequence[str] | None = None,
    complaint_topics: Sequence[str] = COMPLAINT_TOPICS,
) -> DataFrame:
    """KPIs of ``months`` (all months present when None); ``interactions_df`` should reach a
    week before the first month, so repeats across a month boundary are seen."""
    flagged = with_repeat_flag(interactions_df)
    if months is not None:
        flagged = flagged.where(F.col("month").isin(list(months)))
    prepared = flagged.select(
        "month",
        F.coalesce(F.col("channel"), F.lit("unknown")).alias("channel"),
        F.coalesce(F.col("type"), F.lit("unknown")).alias("topic"),
        "customer_key",
        F.when(F.col("resolved_at").isNotNull(), F.col("resolution_hours")).alias("hours"),
        "is_repeat",
        F.col("type").isin(*complaint_topics).alias("is_complaint"),
    )
    cubed = (
        prepared.cube("month", "channel", "topic")
        .agg(
            F.grouping("month").alias("_gm"),
            F.count(F.lit(1)).alias("contacts"),
            F.countDistinct("customer_key").alias("customers"),
            F.percentile("hours", 0.5).alias("resolution_hours_median"),
            F.percentile("hours", 0.9).alias("resolution_hours_p90"),
            F.count("hours").alias("_resolved"),
            F.count(F.when(F.col("is_repeat"), 1)).alias("repeat_contacts_7d"),
            F.count(F.when(F.col("is_complaint"), 1)).alias("complaints"),
        )
        .where(F.col("_gm") == 0)
    )

    def share(part: str) -> Column:
        return F.col(part) / F.col("contacts")

    return cubed.select(
        "month",
        F.coalesce(F.col("channel"), F.lit(ALL)).alias("channel"),
        F.coalesce(F.col("topic"), F.lit(ALL)).alias("topic"),
        F.col("contacts").cast("long").alias("contacts"),
        F.col("customers").cast("long").alias("customers"),
        F.when(F.col("customers") > 0, F.col("contacts") / F.col("customers")).alias(
            "contacts_per_customer"
        ),
        "resolution_hours_median",
        "resolution_hours_p90",
        share("_resolved").alias("resolved_share"),
        F.col("repeat_contacts_7d").cast("long").alias("repeat_contacts_7d"),
        share("repeat_contacts_7d").alias("repeat_rate_7d"),
        F.col("complaints").cast("long").alias("complaints"),
        share("complaints").alias("complaint_rate"),
    )


def _weekdays_in_month(month: Column) -> Column:
    # Per month, how many times each weekday (1 = Sunday .. 7 = Saturday) occurs.
    days = F.sequence(month_start(month), month_end(month))
    return F.explode(F.transform(days, lambda d: F.dayofweek(d)))


def kpi_service_workload(interactions_df: DataFrame) -> DataFrame:
    """Contacts by month, weekday and hour opened, with the average per weekday occurrence."""
    opened = interactions_df.where(F.col("opened_at").isNotNull()).select(
        "month",
        F.dayofweek("opened_at").alias("weekday"),
        F.hour("opened_at").alias("hour"),
        F.col("resolution_hours"),
    )
    counts = opened.groupBy("month", "weekday", "hour").agg(
        F.count(F.lit(1)).alias("contacts"),
        F.coalesce(F.sum("resolution_hours"), F.lit(0.0)).alias("resolution_hours_total"),
    )
    occurrences = (
        counts.select("month")
        .distinct()
        .select("month", _weekdays_in_month(F.col("month")).alias("weekday"))
        .groupBy("month", "weekday")
        .agg(F.count(F.lit(1)).alias("days"))
    )
    return counts.join(occurrences, on=["month", "weekday"], how="inner").select(
        "month",
        "weekday",
        F.date_format(
            F.date_add(F.next_day(F.lit("2024-01-01").cast("date"), "Sun"), F.col("weekday") - 1),
            "EEE",
        ).alias("weekday_name"),
        "hour",
        F.col("contacts").cast("long").alias("contacts"),
        (F.col("contacts") / F.col("days")).alias("contacts_per_day"),
        "resolution_hours_total",
    )

"""``gold.customer_monthly_features``: one row per customer and month, point-in-time correct.

A customer has a row for every month from their join month to their closure month (or the last
month processed), computed only from data up to that month's end: the month's snapshot of the
golden record, transactions of the trailing ``lookback_months`` months, the month's service
interactions and marketing record. Definitions (all over the customer's transactions of the
month unless said otherwise):

- spend = completed debits in USD; ``avg_spend_usd`` and ``spend_volatility_usd`` (sample
  standard deviation, 0 for fewer than two) are over completed debits;
- ``failed_count`` = failed + declined; ``*_rate`` = share of the month's transactions
  (``atm`` = channel ATM, ``online`` = channel ONLINE); ``discretionary_share`` = share of spend
  in the configured discretionary MCCs. A rate without a denominator is 0;
- ``distinct_tx_types`` = distinct channels, ``active_days`` = distinct days, of any transaction;
- engagement of a month = completed transactions' count, USD value (both directions), distinct
  channels and distinct days; ``eng_*_3m`` average them over the ``rolling_months`` months up to
  the month, counting only months since the customer joined;
- ``recency_days`` = days from the last completed transaction in the lookback window to the
  month end (``recency_cap_days`` without one); ``frequency_12m`` and ``monetary_12m_usd`` =
  completed transactions and spend in the window; ``clv_estimate_usd`` = mean monthly spend in
  the window (months since joining) x ``clv_margin_rate``, discounted over
  ``clv_horizon_months`` at ``clv_monthly_discount``;
- service: interactions opened in the month; unresolved = not resolved by the month end
  (``avg_resolution_hours`` over those resolved by then, 0 without any);
- notifications and plan/device changes from the month's marketing record (0 / false without).
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from cardlake.gold.config import FeaturesConfig
from cardlake.gold.schemas import CUSTOMER_MONTHLY_FEATURES
from cardlake.months import month_end, month_index, next_month_start_ts
from cardlake.silver.activity import CHANNELS

COMPLETED = "completed"
FAILED_STATES = ("failed", "declined")


def _ratio(numerator: Column, denominator: Column) -> Column:
    return F.when(denominator > 0, numerator / denominator).otherwise(F.lit(0.0))


def customer_months(snapshots_df: DataFrame, *, months: Sequence[str]) -> DataFrame:
    """Customers on the books in each of ``months``: joined by, and not closed before, its end.

    One row per customer and month with the profile as of that month's end.
    """
    snap = snapshots_df.where(F.col("month").isin(list(months)) & F.col("customer_key").isNotNull())
    join_month = F.date_format("join_date", "yyyy-MM")
    return snap.where(
        (join_month <= F.col("month"))
        & (F.col("closed_month").isNull() | (F.col("closed_month") >= F.col("month")))
    ).select(
        "customer_key",
        "month",
        month_index(F.col("month")).alias("m_idx"),
        month_index(join_month).alias("join_idx"),
        month_end(F.col("month")).alias("month_end"),
        "plan_type",
        "country",
        "date_of_birth",
        "credit_score",
        "has_debt",
        "debt_outstanding_usd",
    )


# Channels silver names (its vocabulary), each a bit of a mask.
KNOWN_CHANNELS = tuple(sorted(set(CHANNELS.values())))


def _bits(index: Column) -> Column:
    """How many distinct values of ``index`` (0..62; null: none) in a group: a mask's bits."""
    bit = F.call_function("shiftleft", F.lit(1).cast("long"), index)
    return F.coalesce(F.bit_count(F.bit_or(bit)), F.lit(0))


def _distinct_counts(tx: DataFrame, completed: Column) -> tuple[dict[str, Column], DataFrame]:
    """The month's distinct channels and days, all and completed, as ``count(DISTINCT)`` gives.

    Spark plans several ``count(DISTINCT ...)`` in one aggregate as an ``Expand`` that copies
    every row once per distinct column (five times here) before the shuffle, and a set per group
    (``collect_set``) makes it a sort-based aggregate. Masks keep it a plain hash aggregate: a
    bit per channel of silver's vocabulary and per day of the month. The rows a mask cannot hold
    (a channel outside the vocabulary, a date outside its month) are counted apart with
    ``count(DISTINCT)`` and added, since their values are never among the mask's; usually there
    are none. ``python bench/bench_gold.py`` has the figures.

    Returns:
        The four mask columns for the main aggregate, by feature name, and the other rows'
        distinct counts per customer and month (``odd_<name>``), to add to them.
    """
    vocabulary = F.array(*[F.lit(c) for c in KNOWN_CHANNELS])
    channel_index = (F.array_position(vocabulary, F.col("channel")) - 1).cast("int")
    known_channel = channel_index >= 0
    in_month = F.coalesce(
        F.date_format("txn_date", "yyyy-MM") == F.col("month"), F.col("txn_date").isNull()
    )
    day_index = F.when(in_month, F.dayofmonth("txn_date"))
    masks = {
        "distinct_tx_types": _bits(F.when(known_channel, channel_index)),
        "active_days": _bits(day_index),
        "eng_types": _bits(F.when(completed & known_channel, channel_index)),
        "eng_days": _bits(F.when(completed, day_index)),
    }
    odd_channel = F.when(~known_channel, F.col("channel"))
    odd_day = F.when(~in_month, F.col("txn_date"))
    odd = (
        tx.where(odd_channel.isNotNull() | odd_day.isNotNull())
        .groupBy("customer_key", "month")
        .agg(
            F.countDistinct(odd_channel).alias("odd_distinct_tx_types"),
            F.countDistinct(odd_day).alias("odd_active_days"),
            F.countDistinct(F.when(completed, odd_channel)).alias("odd_eng_types"),
            F.countDistinct(F.when(completed, odd_day)).alias("odd_eng_days"),
        )
    )
    return {name: mask.alias(name) for name, mask in masks.items()}, odd


def monthly_activity(transactions_df: DataFrame, *, discretionary_mccs: Sequence[str]) -> DataFrame:
    """Per customer and month: the month's transaction aggregates (only months with activity)."""
    completed = F.col("state") == COMPLETED
    spend = completed & (F.col("direction") == "debit")
    spend_amount = F.when(spend, F.col("amount_usd"))
    tx = transactions_df.where(F.col("customer_key").isNotNull())
    masks, odd = _distinct_counts(tx, completed)
    main = tx.groupBy("customer_key", "month").agg(
        F.count(F.lit(1)).alias("tx_count"),
        F.count(F.when(completed, 1)).alias("completed_count"),
        F.count(F.when(F.col("state").isin(*FAILED_STATES), 1)).alias("failed_count"),
        F.coalesce(F.sum(spend_amount), F.lit(0.0)).alias("spend_usd"),
        F.count(spend_amount).alias("spend_n"),
        F.coalesce(F.stddev_samp(spend_amount), F.lit(0.0)).alias("spend_volatility_usd"),
        F.count(F.when(F.col("channel") == "ATM", 1)).alias("atm_n"),
        F.count(F.when(F.col("channel") == "ONLINE", 1)).alias("online_n"),
        F.count(F.when(F.col("is_cross_border"), 1)).alias("cross_border_n"),
        F.count(F.when(F.col("is_night"), 1)).alias("night_count"),
        F.coalesce(
            F.sum(F.when(spend & F.col("mcc").isin(*discretionary_mccs), F.col("amount_usd"))),
            F.lit(0.0),
        ).alias("discretionary_usd"),
        masks["distinct_tx_types"],
        masks["active_days"],
        F.coalesce(F.sum(F.when(completed, F.col("amount_usd"))), F.lit(0.0)).alias(
            "eng_value_usd"
        ),
        masks["eng_types"],
        masks["eng_days"],
        F.max(F.when(completed, F.col("txn_date"))).alias("last_completed_date"),
    )
    return (
        main.join(odd, on=["customer_key", "month"], how="left")
        .withColumns({c: F.col(c) + F.coalesce(F.col(f"odd_{c}"), F.lit(0)) for c in masks})
        .drop(*[f"odd_{c}" for c in masks])
        .withColumn("a_idx", month_index(F.col("month")))
    )


def _annuity(months: int, rate: float) -> float:
    # Present value of 1 per month for `months` months at `rate` per month.
    if rate == 0:
        return float(months)
    return (1 - (1 + rate) ** -months) / rate


def customer_monthly_features(
    snapshots_df: DataFrame,
    *,
    transactions_df: DataFrame,
    interactions_df: DataFrame,
    marketing_df: DataFrame,
    months: Sequence[str],
    discretionary_mccs: Sequence[str],
    settings: FeaturesConfig,
) -> DataFrame:
    """The feature rows of ``months`` (contract: ``CUSTOMER_MONTHLY_FEATURES``).

    Args:
        snapshots_df: ``silver.customer_snapshots`` holding at least the ``months``.
        transactions_df: ``silver.transactions`` of the ``months`` and the
            ``lookback_months - 1`` months before each (earlier or later rows are ignored).
        interactions_df: ``silver.interactions`` of the ``months``.
        marketing_df: ``silver.marketing_monthly`` of the ``months``.
        months: the feature months, ``YYYY-MM``.
        discretionary_mccs: MCCs counted as discretionary spend.
        settings: windows and CLV parameters.
    """
    base = customer_months(snapshots_df, months=months)
    activity = monthly_activity(transactions_df, discretionary_mccs=discretionary_mccs)

    this_month = activity.drop(
        "a_idx", "last_completed_date", "eng_value_usd", "eng_types", "eng_days"
    )
    lookback, rolling = settings.lookback_months, settings.rolling_months
    history = (
        base.select("customer_key", "month", "m_idx", "join_idx", "month_end")
        .alias("b")
        .join(
            activity.select(
                "customer_key",
                "a_idx",
                "completed_count",
                "spend_usd",
                "eng_value_usd",
                "eng_types",
                "eng_days",
                "last_completed_date",
            ).alias("a"),
            on=(F.col("b.customer_key") == F.col("a.customer_key"))
            & F.col("a.a_idx").between(F.col("b.m_idx") - (lookback - 1), F.col("b.m_idx")),
            how="inner",
        )
    )
    in_rolling = F.col("a.a_idx") > F.col("b.m_idx") - rolling
    window_stats = history.groupBy(
        F.col("b.customer_key").alias("customer_key"), F.col("b.month").alias("month")
    ).agg(
        F.sum(F.when(in_rolling, F.col("a.completed_count")).otherwise(0)).alias("r_count"),
        F.sum(F.when(in_rolling, F.col("a.eng_value_usd")).otherwise(0.0)).alias("r_value"),
        F.sum(F.when(in_rolling, F.col("a.eng_types")).otherwise(0)).alias("r_types"),
        F.sum(F.when(in_rolling, F.col("a.eng_days")).otherwise(0)).alias("r_days"),
        F.sum("a.completed_count").alias("frequency_12m"),
        F.sum("a.spend_usd").alias("monetary_12m_usd"),
        F.max("a.last_completed_date").alias("last_completed_date"),
    )

    service = (
        interactions_df.where(F.col("customer_key").isNotNull())
        .withColumn("resolved_by_end", F.col("resolved_at") < next_month_start_ts(F.col("month")))
        .groupBy("customer_key", "month")
        .agg(
            F.count(F.lit(1)).alias("service_contacts"),
            F.count(F.when(~F.coalesce(F.col("resolved_by_end"), F.lit(False)), 1)).alias(
                "service_unresolved"
            ),
            F.avg(F.when(F.col("resolved_by_end"), F.col("resolution_hours"))).alias(
                "avg_resolution_hours"
            ),
            F.count(F.when(F.col("type") == "fraud_report", 1)).alias("fraud_contacts"),
        )
    )
    marketing = (
        marketing_df.where(F.col("customer_key").isNotNull())
        .groupBy("customer_key", "month")
        .agg(
            F.sum("notifications_sent").cast("long").alias("notifications_sent"),
            F.sum("notifications_failed").cast("long").alias("notifications_failed"),
            F.sum("notifications_opened").cast("long").alias("notifications_opened"),
            F.bool_or("plan_changed").alias("plan_changed"),
            F.bool_or("device_changed").alias("device_changed"),
        )
    )

    keys = ["customer_key", "month"]
    joined = (
        base.join(this_month, on=keys, how="left")
        .join(window_stats, on=keys, how="left")
        .join(service, on=keys, how="left")
        .join(marketing, on=keys, how="left")
    )

    def zero(name: str, kind: str = "long") -> Column:
        return F.coalesce(F.col(name), F.lit(0)).cast(kind)

    def zero_d(name: str) -> Column:
        return F.coalesce(F.col(name), F.lit(0.0)).cast("double")

    months_known = F.col("m_idx") - F.col("join_idx") + 1
    n_rolling = F.least(F.lit(rolling), months_known)
    n_lookback = F.least(F.lit(lookback), months_known)
    tx = zero("tx_count")
    monthly_spend = zero_d("monetary_12m_usd") / n_lookback
    annuity = _annuity(settings.clv_horizon_months, settings.clv_monthly_discount)
    sent = zero("notifications_sent")
    return joined.select(
        "customer_key",
        "month",
        tx.alias("tx_count"),
        zero("completed_count").alias("completed_count"),
        zero("failed_count").alias("failed_count"),
        _ratio(zero("failed_count"), tx).alias("failed_rate"),
        zero_d("spend_usd").alias("spend_usd"),
        _ratio(zero_d("spend_usd"), zero("spend_n")).alias("avg_spend_usd"),
        zero_d("spend_volatility_usd").alias("spend_volatility_usd"),
        _ratio(zero("atm_n"), tx).alias("atm_rate"),
        _ratio(zero("online_n"), tx).alias("online_rate"),
        _ratio(zero("cross_border_n"), tx).alias("cross_border_rate"),
        zero("night_count").alias("night_count"),
        _ratio(zero("night_count"), tx).alias("night_rate"),
        _ratio(zero_d("discretionary_usd"), zero_d("spend_usd")).alias("discretionary_share"),
        zero("distinct_tx_types", "int").alias("distinct_tx_types"),
        zero("active_days", "int").alias("active_days"),
        (zero("completed_count") > 0).alias("is_active"),
        (zero("r_count") / n_rolling).cast("double").alias("eng_count_3m"),
        (zero_d("r_value") / n_rolling).alias("eng_value_usd_3m"),
        (zero("r_types") / n_rolling).cast("double").alias("eng_types_3m"),
        (zero("r_days") / n_rolling).cast("double").alias("eng_days_3m"),
        F.coalesce(
            F.least(
                F.datediff(F.col("month_end"), F.col("last_completed_date")),
                F.lit(settings.recency_cap_days),
            ),
            F.lit(settings.recency_cap_days),
        )
        .cast("int")
        .alias("recency_days"),
        zero("frequency_12m").alias("frequency_12m"),
        zero_d("monetary_12m_usd").alias("monetary_12m_usd"),
        (monthly_spend * F.lit(settings.clv_margin_rate) * F.lit(annuity)).alias(
            "clv_estimate_usd"
        ),
        "plan_type",
        "country",
        F.floor(F.months_between(F.col("month_end"), F.col("date_of_birth")) / 12)
        .cast("int")
        .alias("age"),
        (F.col("m_idx") - F.col("join_idx")).cast("int").alias("tenure_months"),
        F.col("credit_score").cast("int").alias("credit_score"),
        F.col("has_debt").cast("boolean").alias("has_debt"),
        F.col("debt_outstanding_usd").cast("double").alias("debt_outstanding_usd"),
        zero("service_contacts").alias("service_contacts"),
        zero("service_unresolved").alias("service_unresolved"),
        zero_d("avg_resolution_hours").alias("avg_resolution_hours"),
        zero("fraud_contacts").alias("fraud_contacts"),
        sent.alias("notifications_sent"),
        zero("notifications_failed").alias("notifications_failed"),
        zero("notifications_opened").alias("notifications_opened"),
        _ratio(zero("notifications_failed"), sent).alias("notification_fail_rate"),
        F.coalesce(F.col("plan_changed"), F.lit(False)).alias("plan_changed"),
        F.coalesce(F.col("device_changed"), F.lit(False)).alias("device_changed"),
    ).select([F.col(f.name).cast(f.dataType) for f in CUSTOMER_MONTHLY_FEATURES.fields])

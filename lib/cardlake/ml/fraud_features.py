"""The fraud model's features and reason codes: one definition for batch training/scoring
(:mod:`cardlake.ml.fraud`) and the live stream (:mod:`cardlake.stream`).

Every history feature looks strictly backwards in time from the transaction, over the card's
(``instrument_id``) earlier transactions, so the stream computes the same numbers by running the
same transform over the card's retained history plus the new events.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Window, WindowSpec
from pyspark.sql import functions as F

from cardlake.errors import JobFailed
from cardlake.ml.settings import FraudSettings

DAY = 86_400
FAILED_STATES = ("failed", "declined")
CATEGORICAL = ("channel", "state")
BASE_FEATURES = (
    "log_amount",
    "hour",
    "is_night_f",
    "is_cross_border_f",
    "ip_mismatch",
    "is_new_device",
    "is_debit",
    "log_gap_prev",
    "amount_ratio_30d",
    "failed_count_24h",
    "night_count_24h",
    "distinct_merchants_24h",
    "merchant_reports_30d",
)
# Reason codes: a readable name and the condition on the transaction's features.
REASONS: tuple[tuple[str, str], ...] = (
    ("burst of small payments in the last hour", "small_count_1h >= 2"),
    ("merchant with recent fraud reports", "merchant_reports_30d >= 1"),
    ("new device for this customer", "is_new_device = 1"),
    ("IP country differs from home country", "ip_mismatch = 1"),
    ("amount far above the card's usual", "amount_ratio_30d >= 5"),
    ("several payments within the hour", "tx_count_1h >= 3"),
    ("recent failed or declined attempts", "failed_count_24h >= 2"),
    ("night-time", "is_night_f = 1"),
    ("cross-border", "is_cross_border_f = 1"),
)


def window_hours(settings: FraudSettings) -> list[int]:
    return sorted({1, 24, *settings.history_windows_hours})  # reasons need 1h and 24h


def feature_columns(settings: FraudSettings) -> list[str]:
    hours = window_hours(settings)
    history = [f"{kind}_{h}h" for h in hours for kind in ("tx_count", "amount_sum", "small_count")]
    return [*BASE_FEATURES, *history]


def learn_small_amount(
    df: DataFrame, *, label: str, max_share: float = 0.25, steps: int = 25
) -> float:
    """The amount (USD) below which a payment counts as small, learnt from labelled payments.

    A one-split tree on ``amount_usd``: among the amount quantiles up to ``max_share`` (small
    means the low end of the distribution), the cut-off whose split into ``amount < cut`` and the
    rest most reduces the Gini impurity of ``label``. Card-testing probes, small payments that
    are fraud far more often than others of their size, put the cut-off just above them, at
    whatever ceiling the fraudsters use. Ties go to the lowest cut-off; with no positive rows
    every cut-off ties and the lowest candidate is returned.

    Raises:
        JobFailed: ``df`` has no row with an amount.
    """
    rows = df.where(F.col("amount_usd").isNotNull() & F.col(label).isNotNull())
    probs = [max_share * (i + 1) / steps for i in range(steps)]
    cuts = sorted({float(q) for q in rows.approxQuantile("amount_usd", probs, 0.001) if q > 0})
    if not cuts:
        raise JobFailed("no payment with a positive amount to learn the small-amount cut-off")
    y = F.col(label).cast("double")
    aggs = [F.count(F.lit(1)).alias("n"), F.sum(y).alias("pos")]
    for i, cut in enumerate(cuts):
        below = F.col("amount_usd") < F.lit(cut)
        aggs += [
            F.sum(below.cast("long")).alias(f"n{i}"),
            F.sum(F.when(below, y).otherwise(0.0)).alias(f"p{i}"),
        ]
    got = rows.agg(*aggs).collect()[0]
    n, pos = float(got["n"]), float(got["pos"] or 0.0)

    def impurity(count: float, positives: float) -> float:
        share = positives / count if count else 0.0
        return count * 2.0 * share * (1.0 - share)

    best, best_cost = cuts[0], float("inf")
    for i, cut in enumerate(cuts):
        n_below, p_below = float(got[f"n{i}"] or 0.0), float(got[f"p{i}"] or 0.0)
        cost = impurity(n_below, p_below) + impurity(n - n_below, pos - p_below)
        if cost < best_cost - 1e-9:
            best, best_cost = cut, cost
    return best


def _backwards(partition: str, seconds: int) -> WindowSpec:
    # The ``seconds`` before the transaction, excluding the transaction's own second.
    return Window.partitionBy(partition).orderBy("epoch").rangeBetween(-seconds, -1)


def with_transaction_features(
    tx_df: DataFrame,
    *,
    hours: Sequence[int],
    small_amount_usd: float,
    reports_df: DataFrame | None = None,
) -> DataFrame:
    """Adds the model's features; every window looks only at the card's earlier transactions.

    ``reports_df`` holds the fraud reports (``merchant_id``, ``fraud_reported_at``) the merchant
    feature counts; by default those of ``tx_df`` itself (batch). The stream passes silver's.
    """
    # Two projections instead of a withColumn a feature: each withColumn analyses the whole plan
    # again, and the stream builds this transform anew every micro-batch. withColumns keeps
    # withColumn's output (a column replaced in place, the new ones appended in this order);
    # the second projection reads the first's amount_usd, and the raw channel, state and
    # is_night, as the chain did (it replaced channel and state last).
    df = tx_df.withColumns(
        {
            "epoch": F.col("ts").cast("long"),
            "amount_usd": F.coalesce(F.col("amount_usd"), F.lit(0.0)),
        }
    )
    is_small = (F.col("amount_usd") < small_amount_usd).cast("int")
    is_failed = F.col("state").isin(*FAILED_STATES).cast("int")
    history: dict[str, Column] = {}
    for h in hours:
        w = _backwards("instrument_id", h * 3600)
        history[f"tx_count_{h}h"] = F.count(F.lit(1)).over(w).cast("double")
        history[f"amount_sum_{h}h"] = F.coalesce(F.sum("amount_usd").over(w), F.lit(0.0))
        history[f"small_count_{h}h"] = F.coalesce(F.sum(is_small).over(w), F.lit(0)).cast("double")
    w24 = _backwards("instrument_id", DAY)
    w30 = _backwards("instrument_id", 30 * DAY)
    ordered = Window.partitionBy("instrument_id").orderBy("epoch", "transaction_id")
    first_use = Window.partitionBy("customer_key", "device_id").orderBy("epoch", "transaction_id")
    by_customer = Window.partitionBy("customer_key").orderBy("epoch", "transaction_id")
    avg30 = F.avg("amount_usd").over(w30)
    df = df.withColumns(
        {
            **history,
            "failed_count_24h": F.coalesce(F.sum(is_failed).over(w24), F.lit(0)).cast("double"),
            "night_count_24h": F.coalesce(
                F.sum(F.col("is_night").cast("int")).over(w24), F.lit(0)
            ).cast("double"),
            "distinct_merchants_24h": F.size(F.collect_set("merchant_id").over(w24)).cast("double"),
            "log_gap_prev": F.log1p(
                F.coalesce(F.col("epoch") - F.lag("epoch").over(ordered), F.lit(365 * DAY)).cast(
                    "double"
                )
            ),
            "amount_ratio_30d": F.col("amount_usd")
            / F.greatest(F.coalesce(avg30, F.col("amount_usd")), F.lit(1.0)),
            "is_new_device": (
                F.col("device_id").isNotNull()
                & (F.row_number().over(first_use) == 1)
                & (F.row_number().over(by_customer) > 1)
            ).cast("double"),
            "ip_mismatch": (
                F.col("ip_country").isNotNull() & (F.col("ip_country") != F.col("customer_country"))
            ).cast("double"),
            "log_amount": F.log1p(F.col("amount_usd")),
            "hour": F.hour("ts").cast("double"),
            "is_night_f": F.coalesce(F.col("is_night").cast("double"), F.lit(0.0)),
            "is_cross_border_f": F.coalesce(F.col("is_cross_border").cast("double"), F.lit(0.0)),
            "is_debit": (F.col("direction") == "debit").cast("double"),
            "channel": F.coalesce(F.col("channel"), F.lit("unknown")),
            "state": F.coalesce(F.col("state"), F.lit("unknown")),
        }
    )
    reports = merchant_reports(tx_df, reports_df=reports_df)
    return df.join(reports, on=["merchant_id", "txn_date"], how="left").fillna(
        0.0, subset=["merchant_reports_30d"]
    )


def merchant_reports(
    tx_df: DataFrame, days: int = 30, *, reports_df: DataFrame | None = None
) -> DataFrame:
    """Per merchant and day: fraud reports filed on that merchant in the ``days`` before."""
    source = tx_df if reports_df is None else reports_df
    # The reports' merchant under a name of its own: both sides usually come from tx_df, and
    # the same column on both sides of a join is a trivially true condition Spark must guess at.
    reports = source.where(F.col("fraud_reported_at").isNotNull()).select(
        F.col("merchant_id").alias("reported_merchant"),
        F.to_date("fraud_reported_at").alias("report_day"),
    )
    days_seen = tx_df.select("merchant_id", "txn_date").distinct()  # the lookup grid itself
    joined = days_seen.join(
        reports,
        on=(F.col("merchant_id") == F.col("reported_merchant"))
        & (F.col("report_day") < F.col("txn_date"))
        & (F.col("report_day") >= F.date_sub(F.col("txn_date"), days)),
        how="inner",
    )
    return joined.groupBy("merchant_id", "txn_date").agg(
        F.count(F.lit(1)).cast("double").alias("merchant_reports_30d")
    )


def reasons_column(max_reasons: int) -> Column:
    """The first ``max_reasons`` reason codes (in ``REASONS`` order) that hold."""
    codes = [F.when(F.expr(cond), F.lit(text)) for text, cond in REASONS]
    return F.slice(F.filter(F.array(*codes), lambda x: x.isNotNull()), 1, max_reasons)

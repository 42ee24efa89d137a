"""Gold contracts that models and SQL users rely on.

``CUSTOMER_MONTHLY_FEATURES`` is the point-in-time feature table the ML pipelines read: one row
per customer and month from the customer's join month to their closure month, computed only
from data up to that month's end. Rates are in [0, 1]; USD amounts are doubles; counts of a
month with no activity are 0, not null.
"""

from __future__ import annotations

from pyspark.sql.types import (
    BooleanType,
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
)

S, DBL, INT, LNG, BOOL = StringType(), DoubleType(), IntegerType(), LongType(), BooleanType()

CUSTOMER_MONTHLY_FEATURES = StructType(
    [
        StructField(name, kind, True)
        for name, kind in (
            ("customer_key", S),
            ("month", S),
            # activity in the month (all transactions; spend = completed debits)
            ("tx_count", LNG),
            ("completed_count", LNG),
            ("failed_count", LNG),  # failed + declined
            ("failed_rate", DBL),
            ("spend_usd", DBL),
            ("avg_spend_usd", DBL),
            ("spend_volatility_usd", DBL),  # stddev of completed debit amounts
            ("atm_rate", DBL),
            ("online_rate", DBL),
            ("cross_border_rate", DBL),
            ("night_count", LNG),
            ("night_rate", DBL),
            ("discretionary_share", DBL),  # share of spend in discretionary MCCs
            ("distinct_tx_types", INT),  # distinct channels
            ("active_days", INT),
            ("is_active", BOOL),  # at least one completed transaction
            # engagement dimensions (completed transactions), 3-month rolling averages
            ("eng_count_3m", DBL),
            ("eng_value_usd_3m", DBL),
            ("eng_types_3m", DBL),
            ("eng_days_3m", DBL),
            # recency / frequency / monetary over the trailing 12 months, and a CLV estimate
            ("recency_days", INT),  # days since last completed tx, as of month end
            ("frequency_12m", LNG),
            ("monetary_12m_usd", DBL),
            ("clv_estimate_usd", DBL),
            # profile as of month end
            ("plan_type", S),
            ("country", S),
            ("age", INT),
            ("tenure_months", INT),
            ("credit_score", INT),
            ("has_debt", BOOL),
            ("debt_outstanding_usd", DBL),
            # service and CRM
            ("service_contacts", LNG),
            ("service_unresolved", LNG),
            ("avg_resolution_hours", DBL),
            ("fraud_contacts", LNG),
            ("notifications_sent", LNG),
            ("notifications_failed", LNG),
            ("notifications_opened", LNG),
            ("notification_fail_rate", DBL),
            ("plan_changed", BOOL),
            ("device_changed", BOOL),
        )
    ]
)

FEATURE_COLUMNS = tuple(
    f.name
    for f in CUSTOMER_MONTHLY_FEATURES.fields
    if f.name not in ("customer_key", "month", "plan_type", "country")
)
"""Numeric and boolean features (categoricals plan_type and country are encoded by models)."""

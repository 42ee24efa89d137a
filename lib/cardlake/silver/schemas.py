"""Silver table contracts: the schemas silver jobs write and gold reads.

Amounts in USD are doubles (converted with the day's FX rate); source amounts keep their
decimal type. ``month`` is the business month ``YYYY-MM`` and the partition column of every
activity table. ``customer_key`` is the stable entity-resolution key (``CK`` + 10 hex digits).
"""

from __future__ import annotations

from pyspark.sql.types import (
    BooleanType,
    DateType,
    DecimalType,
    DoubleType,
    IntegerType,
    LongType,
    MapType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)


def _schema(*fields: tuple[str, object]) -> StructType:
    return StructType([StructField(name, kind, True) for name, kind in fields])  # type: ignore[arg-type]


S, D, TS, DBL, INT, LNG, BOOL = (
    StringType(),
    DateType(),
    TimestampType(),
    DoubleType(),
    IntegerType(),
    LongType(),
    BooleanType(),
)
AMOUNT = DecimalType(18, 2)

# One golden record per person, current state. ``lineage`` maps each attribute to the
# "source:record_id" that supplied it (survivorship).
CUSTOMERS = _schema(
    ("customer_key", S),
    ("first_name", S),
    ("last_name", S),
    ("date_of_birth", D),
    ("national_id", S),  # core banking's (KYC), canonical; never in gold
    ("gender", S),
    ("marital_status", S),
    ("education", S),
    ("occupation", S),
    ("income_bracket", S),
    ("email", S),
    ("phone", S),
    ("street", S),
    ("city", S),
    ("postcode", S),
    ("country", S),
    ("plan_type", S),
    ("join_date", D),
    ("status", S),
    ("closed_month", S),
    ("device_os", S),
    ("device_id", S),
    ("credit_score", INT),
    ("has_debt", BOOL),
    ("debt_outstanding_usd", DBL),
    ("crm_ids", S),
    ("data_sources", S),
    ("updated_at", TS),
    ("lineage", MapType(S, S)),
)

# The golden record as of each month's end (partitioned by month): what gold's type-2
# dim_customer is derived from. Same columns as CUSTOMERS plus month.
CUSTOMER_SNAPSHOTS = StructType([*CUSTOMERS.fields, StructField("month", S, True)])

# Every source record to its customer_key, with validity (merges and splits close a row and
# open another rather than re-keying silently).
CROSSWALK = _schema(
    ("source", S),
    ("source_record_id", S),
    ("customer_key", S),
    ("match_method", S),
    ("match_probability", DBL),
    ("valid_from", S),
    ("valid_to", S),
    ("is_current", BOOL),
)

TRANSACTIONS = _schema(
    ("transaction_id", S),
    ("customer_key", S),
    ("instrument_type", S),
    ("instrument_id", S),
    ("ts", TS),
    ("txn_date", D),
    ("amount", AMOUNT),
    ("currency", S),
    ("units_per_usd", DBL),
    ("amount_usd", DBL),
    ("merchant_id", S),
    ("mcc", S),
    ("merchant_country", S),
    ("customer_country", S),
    ("channel", S),
    ("direction", S),
    ("state", S),
    ("device_id", S),
    ("ip_country", S),
    ("is_night", BOOL),
    ("is_cross_border", BOOL),
    ("fraud_reported_at", TS),
    ("month", S),
)
"""channel: POS, ATM, ONLINE, P2P, TOPUP, FX, CRYPTO, STOCK. state: completed, failed,
declined, reverted, pending. direction: debit, credit. is_night: local hour 0-5 (UTC here)."""

INTERACTIONS = _schema(
    ("interaction_id", S),
    ("customer_key", S),
    ("channel", S),
    ("type", S),
    ("opened_at", TS),
    ("resolved_at", TS),
    ("resolution_hours", DBL),
    ("note", S),
    ("month", S),
)

MARKETING_MONTHLY = _schema(
    ("customer_key", S),
    ("month", S),
    ("plan_type", S),
    ("plan_changed", BOOL),
    ("device_changed", BOOL),
    ("notifications_sent", INT),
    ("notifications_failed", INT),
    ("notifications_opened", INT),
    ("campaign", S),
    ("opted_in", BOOL),
)

PRODUCT_USAGE = _schema(
    ("usage_id", S),
    ("customer_key", S),
    ("month", S),
    ("product", S),
    ("sessions", INT),
    ("minutes", DBL),
    ("last_seen", D),
    ("device_os", S),
)

# Activity rows of records that link to no customer source (an app user whose usage rows carry
# neither an e-mail nor a CRM id): held back from product_usage and marketing_monthly, and let in
# by the run whose entity resolution links their record to a customer. ``row_id`` is the row's key
# in its source (usage_id; contact_id:month), ``source_record_id`` its record's key (app_user_id,
# contact_id), ``reason`` why it is held back.
UNRESOLVED_ACTIVITY = _schema(
    ("source", S),
    ("source_record_id", S),
    ("row_id", S),
    ("month", S),
    ("reason", S),
)

MERCHANTS = _schema(
    ("merchant_id", S),
    ("name", S),
    ("mcc", S),
    ("category", S),
    ("country", S),
    ("city", S),
    ("online", BOOL),
    ("opened_on", D),
)

ACCOUNTS = _schema(
    ("account_id", S),
    ("customer_key", S),
    ("type", S),
    ("currency", S),
    ("opened", D),
    ("balance", DBL),
    ("as_of", TS),
)

CARDS = _schema(
    ("card_id", S),
    ("customer_key", S),
    ("network", S),
    ("type", S),
    ("last4", S),
    ("issued", D),
    ("status", S),
)

DEBTS = _schema(
    ("debt_id", S),
    ("customer_key", S),
    ("type", S),
    ("principal", DBL),
    ("outstanding", DBL),
    ("interest_rate", DBL),
    ("status", S),
    ("opened", D),
)

FX_RATES = _schema(("date", D), ("currency", S), ("units_per_usd", DBL))

SCHEMAS: dict[str, StructType] = {
    "customers": CUSTOMERS,
    "customer_snapshots": CUSTOMER_SNAPSHOTS,
    "crosswalk": CROSSWALK,
    "transactions": TRANSACTIONS,
    "interactions": INTERACTIONS,
    "marketing_monthly": MARKETING_MONTHLY,
    "product_usage": PRODUCT_USAGE,
    "unresolved_activity": UNRESOLVED_ACTIVITY,
    "merchants": MERCHANTS,
    "accounts": ACCOUNTS,
    "cards": CARDS,
    "debts": DEBTS,
    "fx_rates": FX_RATES,
}
"""silver.<name> to its schema; activity tables are partitioned by ``month``."""

PARTITIONED_BY_MONTH = frozenset(
    {
        "customer_snapshots",
        "transactions",
        "interactions",
        "marketing_monthly",
        "product_usage",
        "unresolved_activity",
    }
)

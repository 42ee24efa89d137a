"""customer_monthly_features on the tiny silver inputs, against values computed by hand."""

from __future__ import annotations

import math
from typing import Any

from chispa import assert_approx_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from cardlake.gold.config import FeaturesConfig
from cardlake.gold.features import customer_monthly_features
from cardlake.gold.schemas import CUSTOMER_MONTHLY_FEATURES
from tests.gold.conftest import C1, C2, C3, MONTHS

SETTINGS = FeaturesConfig()  # 12-month lookback, 3-month rolling, cap 366, CLV 2% over 36 months
DISCRETIONARY = ("5812", "5732")
PRECISION = 1e-9
ANNUITY = sum(1.01**-t for t in range(1, 37))  # present value of 1 a month for 36 months at 1%


def clv(monthly_spend: float) -> float:
    return monthly_spend * 0.02 * ANNUITY


ZERO: dict[str, Any] = {
    "tx_count": 0,
    "completed_count": 0,
    "failed_count": 0,
    "failed_rate": 0.0,
    "spend_usd": 0.0,
    "avg_spend_usd": 0.0,
    "spend_volatility_usd": 0.0,
    "atm_rate": 0.0,
    "online_rate": 0.0,
    "cross_border_rate": 0.0,
    "night_count": 0,
    "night_rate": 0.0,
    "discretionary_share": 0.0,
    "distinct_tx_types": 0,
    "active_days": 0,
    "is_active": False,
    "eng_count_3m": 0.0,
    "eng_value_usd_3m": 0.0,
    "eng_types_3m": 0.0,
    "eng_days_3m": 0.0,
    "recency_days": 366,
    "frequency_12m": 0,
    "monetary_12m_usd": 0.0,
    "clv_estimate_usd": 0.0,
    "credit_score": 700,
    "has_debt": False,
    "debt_outstanding_usd": 0.0,
    "service_contacts": 0,
    "service_unresolved": 0,
    "avg_resolution_hours": 0.0,
    "fraud_contacts": 0,
    "notifications_sent": 0,
    "notifications_failed": 0,
    "notifications_opened": 0,
    "notification_fail_rate": 0.0,
    "plan_changed": False,
    "device_changed": False,
}


def row(**values: Any) -> tuple[Any, ...]:
    merged = {**ZERO, **values}
    return tuple(merged[f.name] for f in CUSTOMER_MONTHLY_FEATURES.fields)


EXPECTED = [
    # C1, January: T1 POS 100 (discretionary), T2 ATM 50, T3 online failed 20 (night, abroad).
    row(
        customer_key=C1,
        month="2024-01",
        tx_count=3,
        completed_count=2,
        failed_count=1,
        failed_rate=1 / 3,
        spend_usd=150.0,
        avg_spend_usd=75.0,
        spend_volatility_usd=math.sqrt(((100 - 75) ** 2 + (50 - 75) ** 2) / 1),
        atm_rate=1 / 3,
        online_rate=1 / 3,
        cross_border_rate=1 / 3,
        night_count=1,
        night_rate=1 / 3,
        discretionary_share=100 / 150,
        distinct_tx_types=3,
        active_days=2,
        is_active=True,
        # two months on the books (Dec, Jan): engagement of Jan = 2 tx, 150 USD, 2 types, 1 day
        eng_count_3m=2 / 2,
        eng_value_usd_3m=150 / 2,
        eng_types_3m=2 / 2,
        eng_days_3m=1 / 2,
        recency_days=26,
        frequency_12m=2,
        monetary_12m_usd=150.0,
        clv_estimate_usd=clv(150 / 2),
        plan_type="standard",
        country="GB",
        age=33,
        tenure_months=1,
        service_contacts=2,
        service_unresolved=1,
        avg_resolution_hours=5.0,
        fraud_contacts=1,
        notifications_sent=10,
        notifications_failed=2,
        notifications_opened=3,
        notification_fail_rate=0.2,
    ),
    # C1, February: no activity; premium now; windows still see January.
    row(
        customer_key=C1,
        month="2024-02",
        eng_count_3m=2 / 3,
        eng_value_usd_3m=150 / 3,
        eng_types_3m=2 / 3,
        eng_days_3m=1 / 3,
        recency_days=55,
        frequency_12m=2,
        monetary_12m_usd=150.0,
        clv_estimate_usd=clv(150 / 3),
        plan_type="premium",
        country="GB",
        age=33,
        tenure_months=2,
        notifications_sent=4,
        notifications_opened=1,
        plan_changed=True,
    ),
    # C1, March: one FX payment of 200.
    row(
        customer_key=C1,
        month="2024-03",
        tx_count=1,
        completed_count=1,
        spend_usd=200.0,
        avg_spend_usd=200.0,
        distinct_tx_types=1,
        active_days=1,
        is_active=True,
        eng_count_3m=(2 + 0 + 1) / 3,
        eng_value_usd_3m=(150 + 0 + 200) / 3,
        eng_types_3m=(2 + 0 + 1) / 3,
        eng_days_3m=(1 + 0 + 1) / 3,
        recency_days=21,
        frequency_12m=3,
        monetary_12m_usd=350.0,
        clv_estimate_usd=clv(350 / 4),
        plan_type="premium",
        country="GB",
        age=33,
        tenure_months=3,
        has_debt=True,
        debt_outstanding_usd=500.0,
    ),
    # C2, February (join month): a completed credit (not spend) and a declined P2P.
    row(
        customer_key=C2,
        month="2024-02",
        tx_count=2,
        completed_count=1,
        failed_count=1,
        failed_rate=0.5,
        distinct_tx_types=2,
        active_days=2,
        is_active=True,
        eng_count_3m=1.0,
        eng_value_usd_3m=30.0,
        eng_types_3m=1.0,
        eng_days_3m=1.0,
        recency_days=18,
        frequency_12m=1,
        plan_type="standard",
        country="DE",
        age=24,
        tenure_months=0,
        credit_score=650,
    ),
    # C2, March: closure month, no activity.
    row(
        customer_key=C2,
        month="2024-03",
        eng_count_3m=1 / 2,
        eng_value_usd_3m=15.0,
        eng_types_3m=0.5,
        eng_days_3m=0.5,
        recency_days=49,
        frequency_12m=1,
        plan_type="standard",
        country="DE",
        age=24,
        tenure_months=1,
        credit_score=650,
    ),
    # C3: closed in January, never active: its January row and nothing after.
    row(customer_key=C3, month="2024-01", plan_type="metal", country="FR", age=53, tenure_months=7),
]


def features(silver: dict[str, DataFrame], months: list[str]) -> DataFrame:
    return customer_monthly_features(
        silver["customer_snapshots"],
        transactions_df=silver["transactions"],
        interactions_df=silver["interactions"],
        marketing_df=silver["marketing_monthly"],
        months=months,
        discretionary_mccs=DISCRETIONARY,
        settings=SETTINGS,
    )


def test_features_match_hand_computed_values(spark: SparkSession, silver: dict[str, DataFrame]):
    actual = features(silver, list(MONTHS))
    expected = spark.createDataFrame(EXPECTED, CUSTOMER_MONTHLY_FEATURES)
    assert actual.schema.fieldNames() == CUSTOMER_MONTHLY_FEATURES.fieldNames()
    assert [f.dataType for f in actual.schema] == [f.dataType for f in CUSTOMER_MONTHLY_FEATURES]
    assert_approx_df_equality(
        actual, expected, PRECISION, ignore_row_order=True, ignore_nullable=True
    )


def test_one_month_uses_only_data_up_to_its_end(spark: SparkSession, silver: dict[str, DataFrame]):
    # February alone, with March's transactions in the input: March must not leak into it.
    actual = features(silver, ["2024-02"])
    expected = spark.createDataFrame(
        [r for r in EXPECTED if r[1] == "2024-02"], CUSTOMER_MONTHLY_FEATURES
    )
    assert_approx_df_equality(
        actual, expected, PRECISION, ignore_row_order=True, ignore_nullable=True
    )


def test_distinct_channels_and_days_count_rows_outside_the_masks(spark: SparkSession):
    # Channels outside silver's vocabulary and a date outside its month are counted apart and
    # added; within the masks, repeats count once; nulls not at all.
    from cardlake.gold.features import monthly_activity

    rows = [  # channel, state, txn_date: customer K1, 2024-03
        ("POS", "completed", "2024-03-01"),
        ("POS", "completed", "2024-03-01"),  # the same channel and day again
        ("ATM", "failed", "2024-03-05"),  # a channel and a day not completed
        ("KIOSK", "completed", "2024-03-05"),  # a channel silver does not name
        ("KIOSK", "failed", "2024-03-06"),
        ("WIRE", "failed", "2024-02-29"),  # another unknown channel, on a date of last month
        (None, "completed", None),  # neither channel nor day
    ]
    tx = spark.createDataFrame(
        [("K1", "2024-03", c, s, d, "debit", 1.0, "5411", False, False) for c, s, d in rows],
        "customer_key string, month string, channel string, state string, txn_date string, "
        "direction string, amount_usd double, mcc string, is_cross_border boolean, "
        "is_night boolean",
    ).withColumn("txn_date", F.to_date("txn_date"))
    got = monthly_activity(tx, discretionary_mccs=()).first()
    assert got is not None
    # POS, ATM, KIOSK, WIRE; days 1, 5, 6 and 29 Feb; completed: POS, KIOSK on 1 and 5 March.
    assert (got["distinct_tx_types"], got["active_days"]) == (4, 4)
    assert (got["eng_types"], got["eng_days"]) == (2, 2)

"""Tiny silver inputs with hand-computable gold outputs.

Customers (months 2024-01 .. 2024-03):
- C1 joins 2023-12, GB, standard plan; moves to premium in 2024-02 (a type-2 change); three
  transactions in January, none in February, one FX payment in March; two service contacts and
  marketing records in January and February.
- C2 joins 2024-02-10, DE; a completed credit and a declined P2P payment in February; closes in
  2024-03 (a second type-2 change; its row in March is its last).
- C3 joined 2023-06 and closed 2024-01: a row in January only, never any activity.
- one transaction without a customer (``customer_key`` None).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession

from cardlake.silver.schemas import SCHEMAS

MONTHS = ("2024-01", "2024-02", "2024-03")
C1, C2, C3 = "CK00000000c1", "CK00000000c2", "CK00000000c3"


def rows_of(schema_name: str, rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    names = [f.name for f in SCHEMAS[schema_name].fields]
    return [tuple(row.get(n) for n in names) for row in rows]


def silver_df(spark: SparkSession, name: str, rows: list[dict[str, Any]]) -> DataFrame:
    return spark.createDataFrame(rows_of(name, rows), SCHEMAS[name])


def _snapshot(key: str, month: str, **attrs: Any) -> dict[str, Any]:
    row = {
        "customer_key": key,
        "month": month,
        "status": "active",
        "crm_ids": f"CRM-{key[-2:]}",
        "data_sources": "crm",
        "updated_at": dt.datetime(2023, 12, 15),
        "credit_score": 700,
        "has_debt": False,
        "debt_outstanding_usd": 0.0,
        "gender": "F",
        "email": f"{key}@x.io",
    }
    row.update(attrs)
    return row


def snapshots_rows() -> list[dict[str, Any]]:
    c1 = {
        "first_name": "Ann",
        "last_name": "Lee",
        "date_of_birth": dt.date(1990, 6, 15),
        "join_date": dt.date(2023, 12, 15),
        "country": "GB",
        "city": "London",
        "postcode": "E1 6AN",
        "street": "1 High St",
    }
    c2 = {
        "first_name": "Bo",
        "last_name": "Kim",
        "date_of_birth": dt.date(2000, 1, 1),
        "join_date": dt.date(2024, 2, 10),
        "country": "DE",
        "city": "Berlin",
        "postcode": "10115",
        "street": "2 Hauptstr",
        "credit_score": 650,
    }
    c3 = {
        "first_name": "Cy",
        "last_name": "Ode",
        "date_of_birth": dt.date(1970, 3, 3),
        "join_date": dt.date(2023, 6, 1),
        "country": "FR",
        "city": "Paris",
        "postcode": None,
        "street": "3 Rue",
        "status": "closed",
        "closed_month": "2024-01",
    }
    rows = [
        _snapshot(C1, "2024-01", plan_type="standard", **c1),
        _snapshot(C1, "2024-02", plan_type="premium", **c1),
        _snapshot(
            C1, "2024-03", plan_type="premium", has_debt=True, debt_outstanding_usd=500.0, **c1
        ),
        _snapshot(C2, "2024-02", plan_type="standard", **c2),
        _snapshot(
            C2,
            "2024-03",
            plan_type="standard",
            **{**c2, "status": "closed"},
            closed_month="2024-03",
        ),
    ]
    rows += [_snapshot(C3, m, plan_type="metal", **c3) for m in MONTHS]
    return rows


def _tx(tid: str, key: str | None, day: dt.date, amount_usd: float, **attrs: Any) -> dict[str, Any]:
    row = {
        "transaction_id": tid,
        "customer_key": key,
        "instrument_type": "card",
        "instrument_id": "CARD00000001",
        "ts": dt.datetime.combine(day, dt.time(12)),
        "txn_date": day,
        "currency": "USD",
        "units_per_usd": 1.0,
        "amount_usd": amount_usd,
        "merchant_id": "M000001",
        "mcc": "5411",
        "merchant_country": "GB",
        "customer_country": "GB",
        "channel": "POS",
        "direction": "debit",
        "state": "completed",
        "is_night": False,
        "is_cross_border": False,
        "month": day.strftime("%Y-%m"),
    }
    row.update(attrs)
    from decimal import Decimal

    row.setdefault("amount", Decimal(str(amount_usd)).quantize(Decimal("0.01")))
    return row


def transactions_rows() -> list[dict[str, Any]]:
    jan5, jan20 = dt.date(2024, 1, 5), dt.date(2024, 1, 20)
    return [
        _tx("T1", C1, jan5, 100.0, mcc="5812"),
        _tx("T2", C1, jan5, 50.0, channel="ATM", mcc="6011"),
        _tx(
            "T3",
            C1,
            jan20,
            20.0,
            channel="ONLINE",
            state="failed",
            is_night=True,
            is_cross_border=True,
            currency="EUR",
            mcc="5732",
            merchant_country="FR",
            fraud_reported_at=dt.datetime(2024, 1, 25),
        ),
        _tx(
            "T4",
            C1,
            dt.date(2024, 3, 10),
            200.0,
            channel="FX",
            currency="EUR",
            instrument_type="wallet",
            instrument_id="ACC-1",
            merchant_id=None,
            mcc=None,
        ),
        _tx(
            "T5",
            C2,
            dt.date(2024, 2, 11),
            30.0,
            direction="credit",
            customer_country="DE",
            merchant_country="DE",
            instrument_id="CARD00000002",
            merchant_id="M999999",
        ),
        _tx(
            "T6",
            C2,
            dt.date(2024, 2, 12),
            10.0,
            channel="P2P",
            state="declined",
            customer_country="DE",
            merchant_country="DE",
            instrument_type="wallet",
            instrument_id="ACC-2",
            merchant_id=None,
            mcc=None,
        ),
        _tx("T7", None, jan5, 5.0),
    ]


def interactions_rows() -> list[dict[str, Any]]:
    return [
        {
            "interaction_id": "I1",
            "customer_key": C1,
            "channel": "phone",
            "type": "fraud_report",
            "opened_at": dt.datetime(2024, 1, 10, 9),
            "resolved_at": dt.datetime(2024, 1, 10, 14),
            "resolution_hours": 5.0,
            "note": "card stolen",
            "month": "2024-01",
        },
        {
            "interaction_id": "I2",
            "customer_key": C1,
            "channel": "chat",
            "type": "fees_complaint",
            "opened_at": dt.datetime(2024, 1, 30, 12),
            "resolved_at": dt.datetime(2024, 2, 2, 0),
            "resolution_hours": 60.0,
            "note": "fees",
            "month": "2024-01",
        },
        {
            "interaction_id": "I3",
            "customer_key": None,
            "channel": "email",
            "type": "general",
            "opened_at": dt.datetime(2024, 2, 1),
            "resolved_at": None,
            "resolution_hours": None,
            "note": None,
            "month": "2024-02",
        },
    ]


def marketing_rows() -> list[dict[str, Any]]:
    base = {"customer_key": C1, "campaign": "none", "opted_in": True, "device_changed": False}
    return [
        {
            **base,
            "month": "2024-01",
            "plan_type": "standard",
            "plan_changed": False,
            "notifications_sent": 10,
            "notifications_failed": 2,
            "notifications_opened": 3,
        },
        {
            **base,
            "month": "2024-02",
            "plan_type": "premium",
            "plan_changed": True,
            "notifications_sent": 4,
            "notifications_failed": 0,
            "notifications_opened": 1,
        },
    ]


def usage_rows() -> list[dict[str, Any]]:
    return [
        {
            "usage_id": "U1",
            "customer_key": C1,
            "month": "2024-01",
            "product": "wallet",
            "sessions": 3,
            "minutes": 12.5,
            "last_seen": dt.date(2024, 1, 29),
            "device_os": "ios",
        },
        {
            "usage_id": "U2",
            "customer_key": None,
            "month": "2024-02",
            "product": "crypto",
            "sessions": 1,
            "minutes": 1.0,
            "last_seen": None,
            "device_os": None,
        },
    ]


def reference_rows() -> dict[str, list[dict[str, Any]]]:
    return {
        "merchants": [
            {
                "merchant_id": "M000001",
                "name": "Cafe",
                "mcc": "5812",
                "category": "restaurants",
                "country": "GB",
                "city": "London",
                "online": False,
                "opened_on": dt.date(2020, 1, 1),
            },
        ],
        "accounts": [
            {
                "account_id": "ACC-1",
                "customer_key": C1,
                "type": "wallet",
                "currency": "GBP",
                "opened": dt.date(2023, 12, 15),
                "balance": 10.0,
                "as_of": dt.datetime(2024, 3, 31),
            },
        ],
        "cards": [
            {
                "card_id": "CARD00000001",
                "customer_key": C1,
                "network": "VISA",
                "type": "virtual",
                "last4": "0001",
                "issued": dt.date(2023, 12, 15),
                "status": "active",
            },
        ],
    }


@pytest.fixture
def silver(spark: SparkSession) -> dict[str, DataFrame]:
    frames = {
        "customer_snapshots": silver_df(spark, "customer_snapshots", snapshots_rows()),
        "transactions": silver_df(spark, "transactions", transactions_rows()),
        "interactions": silver_df(spark, "interactions", interactions_rows()),
        "marketing_monthly": silver_df(spark, "marketing_monthly", marketing_rows()),
        "product_usage": silver_df(spark, "product_usage", usage_rows()),
    }
    for name, rows in reference_rows().items():
        frames[name] = silver_df(spark, name, rows)
    return frames

"""Survivorship: each golden attribute by its rule, as of each month end, with lineage."""

from __future__ import annotations

import json
from datetime import date, datetime

from pyspark.sql import SparkSession

from cardlake.silver.customers import TRUST, golden_snapshots

CANDIDATE = (
    "customer_key string, attribute string, value string, source string, record_id string, "
    "trust int, seen_month string, seen_at timestamp"
)


def cand(attribute: str, value: dict, source: str, record: str, month: str, day: int = 1):  # type: ignore[no-untyped-def]
    return (
        "CK1",
        attribute,
        json.dumps(value),
        source,
        record,
        TRUST[source],
        month,
        datetime(int(month[:4]), int(month[5:]), day),
    )


def test_golden_record_follows_trust_recency_and_lineage(spark: SparkSession) -> None:
    rows = [
        cand("first_name", {"v": "Ann"}, "crm_customers", "CRM-1", "2024-01"),
        cand("first_name", {"v": "Anne"}, "demographics", "D-1", "2024-01"),
        cand("gender", {"v": "F"}, "demographics", "D-1", "2024-01"),
        cand(
            "address",
            {"street": "1 A Street", "city": "Leeds", "postcode": "LS1", "country": "GB"},
            "crm_customers",
            "CRM-1",
            "2024-01",
        ),
        cand(
            "address",
            {"street": "9 B Road", "city": "York", "postcode": "YO1", "country": "GB"},
            "financial_records",
            "FIN-1",
            "2024-03",
        ),
        cand(
            "status",
            {"v": "active", "join_date": "2020-05-01", "month": "2024-01"},
            "crm_customers",
            "CRM-1",
            "2024-01",
        ),
        cand(
            "status",
            {"v": "closed", "join_date": "2020-05-01", "month": "2024-03"},
            "crm_customers",
            "CRM-1",
            "2024-03",
        ),
        cand("email", {"v": "ann@x.org"}, "marketing_monthly", "MK-1", "2024-02"),
    ]
    snapshots = golden_snapshots(
        spark.createDataFrame(rows, CANDIDATE), months=["2024-01", "2024-02", "2024-03"]
    )
    by_month = {r.month: r for r in snapshots.collect()}
    jan, feb, mar = by_month["2024-01"], by_month["2024-02"], by_month["2024-03"]
    assert (jan.first_name, jan.gender, jan.city, jan.status, jan.email) == (
        "Ann",
        "F",
        "Leeds",
        "active",
        None,
    )
    assert feb.email == "ann@x.org"  # delivered in February: not visible in January
    assert (mar.city, mar.street, mar.status, mar.closed_month) == (
        "York",
        "9 B Road",
        "closed",
        "2024-03",
    )
    assert mar.join_date == date(2020, 5, 1)
    assert mar.lineage["address"] == "financial_records:FIN-1"
    assert mar.lineage["first_name"] == "crm_customers:CRM-1"
    assert mar.data_sources == "crm_customers,demographics,financial_records,marketing_monthly"
    assert mar.crm_ids == "CRM-1"

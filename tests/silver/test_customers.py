"""Survivorship: each golden attribute by its rule, as of each month end, with lineage."""

from __future__ import annotations

import json
from datetime import date, datetime

from pyspark.sql import SparkSession

from cardlake.silver.customers import TRUST, golden_snapshots, person_inputs

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
        # The newest of core banking's (KYC); a CRM value would not count (no rule source).
        cand("national_id", {"v": "SYN-GB-482193750-Y"}, "financial_records", "FIN-1", "2024-01"),
        cand("national_id", {"v": "SYN-GB-000000001-D"}, "financial_records", "FIN-1", "2024-03"),
        cand("national_id", {"v": "SYN-GB-999999999-X"}, "crm_customers", "CRM-1", "2024-03", 9),
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
    assert (jan.national_id, feb.national_id, mar.national_id) == (
        "SYN-GB-482193750-Y",
        "SYN-GB-482193750-Y",
        "SYN-GB-000000001-D",
    )
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


CRM_BRONZE = (
    "crm_id string, first_name string, last_name string, date_of_birth string, email string, "
    "phone string, street string, city string, postcode string, country string, "
    "fin_ref string, device_id string, plan_type string, _record_hash string"
)


def test_person_inputs_drop_deliveries_repeating_a_record(spark: SparkSession) -> None:
    ann = (
        "CRM-1",
        "Ann",
        "Lee",
        "1980-02-01",
        "ann@x.com",
        None,
        "1 Main St",
        "Leeds",
        "LS1",
        "GB",
        None,
        "D1",
    )
    crm = spark.createDataFrame(
        [
            (*ann, "standard", "h1"),
            (*ann, "premium", "h2"),  # a plan change: same identity, same person record
            (*ann[:4], "ann.lee@y.com", *ann[5:], "premium", "h3"),  # a new e-mail: a new one
            ("CRM-2", None, None, None, None, None, None, None, None, None, None, None, None, "h4"),
        ],
        CRM_BRONZE,
    )
    frame, mapping = person_inputs({"crm_customers": crm})["crm_customers"]
    rows = frame.select("rid", "email", "xref").collect()
    by_key: dict[str, list[str | None]] = {}
    for row in rows:
        by_key.setdefault(row["rid"].split("~")[0], []).append(row["email"])
    assert sorted(by_key["CRM-1"]) == ["ann.lee@y.com", "ann@x.com"]
    assert by_key["CRM-2"] == [None]
    assert len(rows) == 3
    # A device id links no one: households share devices, so the xref is the CRM id alone.
    assert {row["xref"] for row in rows} == {"CRM-1", "CRM-2"}
    assert mapping["record_id"] == "rid"


def test_a_delivery_between_listed_months_counts_from_the_next_and_one_after_them_never(
    spark: SparkSession,
) -> None:
    rows = [
        cand("first_name", {"v": "Ann"}, "crm_customers", "CRM-1", "2024-01"),
        # newer but less trusted: never replaces the CRM's name
        cand("first_name", {"v": "Anna"}, "demographics", "D-1", "2024-02"),
        cand("gender", {"v": "F"}, "demographics", "D-1", "2024-01"),
        cand("gender", {"v": "X"}, "demographics", "D-2", "2024-02", day=3),
        # same month, no delivery time: the timed delivery is newer
        (
            "CK1",
            "gender",
            json.dumps({"v": "M"}),
            "demographics",
            "D-3",
            TRUST["demographics"],
            "2024-02",
            None,
        ),
        cand("email", {"v": "late@x.org"}, "crm_customers", "CRM-9", "2024-04"),
    ]
    snapshots = golden_snapshots(
        spark.createDataFrame(rows, CANDIDATE), months=["2024-01", "2024-03"]
    )
    by_month = {r.month: r for r in snapshots.collect()}
    assert sorted(by_month) == ["2024-01", "2024-03"]
    jan, mar = by_month["2024-01"], by_month["2024-03"]
    assert (jan.first_name, jan.gender) == ("Ann", "F")
    assert jan.data_sources == "crm_customers,demographics"
    assert (mar.first_name, mar.gender) == ("Ann", "X")  # February's delivery, seen by March's end
    assert mar.lineage["gender"] == "demographics:D-2"
    assert mar.email is None and mar.crm_ids == "CRM-1"  # April's delivery is after every month

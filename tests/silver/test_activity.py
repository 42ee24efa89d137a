"""Cleaned transactions and interactions on tiny bronze-shaped inputs."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from chispa import assert_df_equality
from pyspark.sql import SparkSession

from cardlake.silver.activity import interactions, transactions

TX = (
    "transaction_id string, timestamp timestamp, amount decimal(18,2), currency string, "
    "merchant_id string, mcc string, merchant_country string, channel string, direction string, "
    "state string, device_id string, ip_country string, card_token string, wallet_id string, "
    "ingest_month string, _source_file string, _line long"
)


def test_transactions_are_deduplicated_converted_keyed_and_flagged(spark: SparkSession) -> None:
    bronze = spark.createDataFrame(
        [
            (
                "T1",
                datetime(2024, 3, 5, 2, 30),
                Decimal("100.00"),
                "EUR",
                "M1",
                "5411",
                "FR",
                "POS",
                "debit",
                "completed",
                None,
                None,
                "tokA",
                None,
                "2024-03",
                "a.csv",
                2,
            ),
            # the same transaction delivered again later: the first delivery wins
            (
                "T1",
                datetime(2024, 3, 5, 2, 30),
                Decimal("100.00"),
                "EUR",
                "M1",
                "5411",
                "FR",
                "POS",
                "debit",
                "completed",
                None,
                None,
                "tokA",
                None,
                "2024-04",
                "b.csv",
                9,
            ),
            (
                "T2",
                datetime(2024, 3, 6, 14, 0),
                Decimal("50.00"),
                "GBP",
                None,
                None,
                None,
                "top-up",
                "credit",
                "Failed",
                "d1",
                "GB",
                None,
                "W1",
                "2024-03",
                "w.jsonl",
                1,
            ),
            (
                "T3",
                datetime(2024, 3, 7, 9, 0),
                Decimal("10.00"),
                "USD",
                "M2",
                "5812",
                "US",
                "online",
                "debit",
                "pending",
                "d2",
                "US",
                "tokZ",
                None,
                "2024-03",
                "a.csv",
                3,
            ),
        ],
        TX,
    )
    instruments = spark.createDataFrame(
        [("tokA", "CK1"), ("W1", "CK2")], "instrument_id string, customer_key string"
    )
    fx = spark.createDataFrame(
        [
            (date(2024, 3, 5), "EUR", 0.8),
            (date(2024, 3, 6), "GBP", 0.5),
            (date(2024, 3, 7), "USD", 1.0),
        ],
        "date date, currency string, units_per_usd double",
    )
    customers = spark.createDataFrame(
        [("CK1", "GB"), ("CK2", "GB")], "customer_key string, country string"
    )
    chargebacks = spark.createDataFrame(
        [("T1", datetime(2024, 4, 1))], "transaction_id string, reported_at timestamp"
    )
    got = transactions(
        bronze, instruments=instruments, fx=fx, customers=customers, chargebacks=chargebacks
    ).select(
        "transaction_id",
        "customer_key",
        "instrument_type",
        "amount_usd",
        "channel",
        "state",
        "is_night",
        "is_cross_border",
        "fraud_reported_at",
        "month",
    )
    expected = spark.createDataFrame(
        [
            (
                "T1",
                "CK1",
                "card",
                125.0,
                "POS",
                "completed",
                True,
                True,
                datetime(2024, 4, 1),
                "2024-03",
            ),
            ("T2", "CK2", "wallet", 100.0, "TOPUP", "failed", False, False, None, "2024-03"),
            ("T3", None, "card", 10.0, "ONLINE", "pending", False, False, None, "2024-03"),
        ],
        "transaction_id string, customer_key string, instrument_type string, amount_usd double, "
        "channel string, state string, is_night boolean, is_cross_border boolean, "
        "fraud_reported_at timestamp, month string",
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_interactions_resolve_refs_and_leave_shared_phones_unresolved(
    spark: SparkSession,
) -> None:
    bronze = spark.createDataFrame(
        [
            (
                "INT-1",
                "CRM-0000001",
                "chat",
                "app_login",
                datetime(2024, 5, 1, 10),
                datetime(2024, 5, 1, 13),
                "  cannot  log in ",
                "2024-05",
                "s.log",
                1,
            ),
            (
                "INT-2",
                "Ann.Lee+x@Example.com",
                "email",
                "fees_complaint",
                datetime(2024, 5, 2, 9),
                None,
                "fees",
                "2024-05",
                "s.log",
                2,
            ),
            (
                "INT-3",
                "+44 7700 900123",
                "phone",
                "card_blocked",
                datetime(2024, 5, 3, 9),
                datetime(2024, 5, 3, 9, 30),
                "blocked",
                "2024-05",
                "s.log",
                3,
            ),
        ],
        "interaction_id string, ref string, channel string, interaction_type string, "
        "opened_at timestamp, resolved_at timestamp, note string, ingest_month string, "
        "_source_file string, _line long",
    )
    refs = spark.createDataFrame(
        [
            ("crm", "CRM-0000001", "CK1"),
            ("email", "ann.lee@example.com", "CK2"),
            ("phone", "+447700900123", "CK3"),
            ("phone", "+447700900123", "CK4"),
        ],
        "ref_kind string, ref_value string, customer_key string",
    )
    got = interactions(bronze, refs=refs).select(
        "interaction_id", "customer_key", "type", "resolution_hours", "note", "month"
    )
    expected = spark.createDataFrame(
        [
            ("INT-1", "CK1", "app_login", 3.0, "cannot log in", "2024-05"),
            ("INT-2", "CK2", "fees_complaint", None, "fees", "2024-05"),
            ("INT-3", None, "card_blocked", 0.5, "blocked", "2024-05"),
        ],
        "interaction_id string, customer_key string, type string, resolution_hours double, "
        "note string, month string",
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)

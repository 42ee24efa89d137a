"""Cleaned transactions and interactions on tiny bronze-shaped inputs."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from chispa import assert_df_equality
from pyspark.sql import SparkSession

from cardlake.silver.activity import (
    HELD_BACK_REASON,
    interactions,
    marketing_monthly,
    product_usage,
    transactions,
    unresolved_activity,
)

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


USAGE = (
    "usage_id string, app_user_id string, month string, product string, sessions int, "
    "minutes double, last_seen date, device_os string, ingest_month string, "
    "_source_file string, _line long"
)
MARKETING = (
    "contact_id string, month string, plan_type string, plan_changed boolean, "
    "device_changed boolean, notifications_sent int, notifications_failed int, "
    "notifications_opened int, campaign string, opted_in boolean, ingest_month string, "
    "_source_file string, _line long"
)


def test_rows_of_held_back_records_leave_usage_and_marketing_for_unresolved_activity(
    spark: SparkSession,
) -> None:
    def use(usage_id: str, app_user: str | None, month: str) -> tuple:
        return (usage_id, app_user, month, "Card", 2, 5.0, date(2024, int(month[5:]), 9), "iOS")

    usage = spark.createDataFrame(
        [
            (*use("US1", "u_1", "2024-01"), "2024-01", "u1.csv", 1),
            (*use("US2", "u_2", "2024-01"), "2024-01", "u1.csv", 2),
            (*use("US2", "u_2", "2024-01"), "2024-02", "u2.csv", 1),  # re-delivered
            (*use("US3", "u_2", "2024-02"), "2024-02", "u2.csv", 2),
            (*use("US4", None, "2024-02"), "2024-02", "u2.csv", 3),  # keyed by nothing
        ],
        USAGE,
    )

    def contact(contact_id: str) -> tuple:
        return (contact_id, "2024-01", "Basic", False, False, 3, 0, 1, "Spring", True)

    marketing = spark.createDataFrame(
        [(*contact("MK1"), "2024-01", "m.csv", 1), (*contact("MK2"), "2024-01", "m.csv", 2)],
        MARKETING,
    )
    keys = spark.createDataFrame(
        [("u_1", "CK1"), ("MK1", "CK1")], "source_record_id string, customer_key string"
    )
    held_back = spark.createDataFrame(
        [("product_usage", "u_2"), ("product_usage", "u_2"), ("marketing_monthly", "MK2")],
        "source string, source_record_id string",
    )  # u_2 twice: a record held back with two identities

    got_usage = product_usage(usage, keys=keys, held_back=held_back).select(
        "usage_id", "customer_key", "month"
    )
    expected_usage = spark.createDataFrame(
        [("US1", "CK1", "2024-01"), ("US4", None, "2024-02")],
        "usage_id string, customer_key string, month string",
    )
    assert_df_equality(got_usage, expected_usage, ignore_row_order=True, ignore_nullable=True)
    got_marketing = marketing_monthly(marketing, keys=keys, held_back=held_back).select(
        "customer_key", "month", "campaign"
    )
    expected_marketing = spark.createDataFrame(
        [("CK1", "2024-01", "spring")], "customer_key string, month string, campaign string"
    )
    assert_df_equality(
        got_marketing, expected_marketing, ignore_row_order=True, ignore_nullable=True
    )
    held = unresolved_activity(usage, marketing, held_back=held_back)
    assert HELD_BACK_REASON == "no_customer_source"
    expected_held = spark.createDataFrame(
        [
            ("product_usage", "u_2", "US2", "2024-01", "no_customer_source"),
            ("product_usage", "u_2", "US3", "2024-02", "no_customer_source"),
            ("marketing_monthly", "MK2", "MK2:2024-01", "2024-01", "no_customer_source"),
        ],
        "source string, source_record_id string, row_id string, month string, reason string",
    )
    assert_df_equality(held, expected_held, ignore_row_order=True, ignore_nullable=True)

"""The golden record's national id: core banking's, in one canonical form, checked.

Check letters worked out by hand (see tests/synth/test_national_id.py): GB482193750 -> Y.
"""

from __future__ import annotations

from datetime import datetime

from chispa import assert_df_equality
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from cardlake.silver.customers import candidates, normalised_national_id

FIN = (
    "fin_id string, holder struct<name string, date_of_birth string, email string, "
    "phone string{extra}>, address struct<street string, city string, postcode string, "
    "country string>, plan_type string, credit_score struct<score bigint>, "
    "debts array<struct<outstanding double>>, updated_at timestamp, ingest_month string"
)
CROSSWALK = "source string, source_record_id string, customer_key string, is_current boolean"


def test_any_spelling_becomes_canonical_and_a_wrong_one_null(spark: SparkSession) -> None:
    rows = [
        ("SYN-GB-482193750-Y", "SYN-GB-482193750-Y"),
        ("SYNGB482193750Y", "SYN-GB-482193750-Y"),
        (" syn gb 482193750 y ", "SYN-GB-482193750-Y"),
        ("SYN-FR-000001234-J", "SYN-FR-000001234-J"),
        ("SYN-GB-482193750-A", None),  # wrong check letter
        ("SYN-GB-482139750-Y", None),  # two digits swapped
        ("SYN-GB-48219375-Y", None),  # eight digits
        ("GB-482193750-Y", None),  # no marker
        ("482193750", None),
        ("n/a", None),
        (None, None),
    ]
    df = spark.createDataFrame(rows, "raw string, expected string")
    got = df.select("raw", normalised_national_id(F.col("raw")).alias("expected"))
    assert_df_equality(got, df, ignore_row_order=True, ignore_nullable=True)


def _fin(fin_id: str, national_id: str | None, month: str) -> tuple:
    return (
        fin_id,
        ("Ann Lee", "1980-02-01", None, None, national_id),
        ("1 Main St", "Leeds", None, "GB"),
        "standard",
        (700,),
        [],
        datetime(int(month[:4]), int(month[5:]), 3),
        month,
    )


def test_core_banking_offers_each_valid_id_in_canonical_form(spark: SparkSession) -> None:
    bronze = spark.createDataFrame(
        [
            _fin("FIN1", "syn gb 482193750 y", "2024-01"),
            _fin("FIN1", None, "2024-02"),  # missing in a later delivery: offers nothing
            _fin("FIN1", "SYN-GB-482193750-A", "2024-03"),  # mistyped: offers nothing
            _fin("FIN2", "SYN-FR-000001234-J", "2024-03"),
        ],
        FIN.format(extra=", national_id string"),
    )
    crosswalk = spark.createDataFrame(
        [
            ("financial_records", "FIN1", "CK1", True),
            ("financial_records", "FIN2", "CK2", True),
        ],
        CROSSWALK,
    )
    offered = candidates({"financial_records": bronze}, crosswalk).where(
        F.col("attribute") == "national_id"
    )
    expected = spark.createDataFrame(
        [
            ("CK1", '{"v":"SYN-GB-482193750-Y"}', "FIN1", "2024-01"),
            ("CK2", '{"v":"SYN-FR-000001234-J"}', "FIN2", "2024-03"),
        ],
        "customer_key string, value string, record_id string, seen_month string",
    )
    assert_df_equality(
        offered.select("customer_key", "value", "record_id", "seen_month"),
        expected,
        ignore_row_order=True,
        ignore_nullable=True,
    )


def test_a_bronze_table_from_before_national_ids_offers_none(spark: SparkSession) -> None:
    old = _fin("FIN1", None, "2024-01")
    bronze = spark.createDataFrame([(*old[:1], old[1][:4], *old[2:])], FIN.format(extra=""))
    crosswalk = spark.createDataFrame([("financial_records", "FIN1", "CK1", True)], CROSSWALK)
    offered = candidates({"financial_records": bronze}, crosswalk).select("attribute").collect()
    # No e-mail or phone in this record either: a candidate with no value offers nothing.
    assert sorted(r.attribute for r in offered) == [
        "address",
        "credit",
        "date_of_birth",
        "first_name",
        "plan_type",
    ]

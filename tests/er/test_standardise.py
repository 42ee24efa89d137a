"""Standardisation column functions on tiny inline data, each with a None row."""

from __future__ import annotations

import datetime as dt

import pytest
from chispa import assert_df_equality
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from cardlake.er import standardise as S

pytest.importorskip("phonenumbers")
pytest.importorskip("pycountry")


def _check(spark: SparkSession, pairs, fn, out_type: str = "string") -> None:
    df = spark.createDataFrame(pairs, f"raw string, expected {out_type}")
    actual = df.select("raw", fn(F.col("raw")).alias("expected"))
    assert_df_equality(actual, df, ignore_row_order=True, ignore_nullable=True)


def test_normalised_name(spark: SparkSession) -> None:
    _check(
        spark,
        [
            (" Dr. José  O'Brien-Smith Jr ", "jose obrien-smith"),
            ("ZOË", "zoe"),
            ("Mrs", None),
            ("   ", None),
            (None, None),
        ],
        S.normalised_name,
    )


def test_canonical_given_name(spark: SparkSession) -> None:
    _check(
        spark,
        [
            ("Bob", "robert"),
            ("  KATE ", "katherine"),
            ("Bob James", "robert james"),
            ("Roberta", "roberta"),
            (None, None),
        ],
        S.canonical_given_name,
    )


def test_emails(spark: SparkSession) -> None:
    _check(
        spark,
        [
            (" John.Smith+shop@GoogleMail.com ", "john.smith+shop@googlemail.com"),
            ("not an email", None),
            ("", None),
            (None, None),
        ],
        S.normalised_email,
    )
    _check(
        spark,
        [
            (" John.Smith+shop@GoogleMail.com ", "johnsmith@gmail.com"),
            ("j.smith+news@yahoo.com", "j.smith@yahoo.com"),
            ("+tag@yahoo.com", None),
            (None, None),
        ],
        S.canonical_email,
    )


def test_e164_phone_with_row_region_and_default(spark: SparkSession) -> None:
    df = spark.createDataFrame(
        [
            ("07911 123456", "GB", "+447911123456"),
            ("+44 7911 123456", None, "+447911123456"),
            ("0044 7911123456", "FR", "+447911123456"),
            ("06 12 34 56 78", "FR", "+33612345678"),
            ("(07911) 123-456", None, "+447911123456"),
            ("12", "GB", None),
            ("not a phone", "GB", None),
            (None, "GB", None),
        ],
        "raw string, region string, expected string",
    )
    actual = df.select(
        "raw",
        "region",
        S.e164_phone(F.col("raw"), F.col("region"), default_region="GB").alias("expected"),
    )
    assert_df_equality(actual, df, ignore_row_order=True, ignore_nullable=True)


def test_normalised_street_and_parts(spark: SparkSession) -> None:
    _check(
        spark,
        [
            ("12 High St.", "12 high street"),
            ("5 Queen Ave", "5 queen avenue"),
            ("40 Mill Ln", "40 mill lane"),
            ("9, Rue de l'Église", "9 rue de l'eglise"),
            (None, None),
        ],
        S.normalised_street,
    )
    _check(spark, [("12a High St", "12a"), ("High St", None), (None, None)], S.street_number)
    _check(
        spark,
        [("sw1a 1aa", "SW1A1AA"), ("M07-8WN", "M078WN"), (" ", None), (None, None)],
        S.normalised_postcode,
    )


def test_parsed_date_formats(spark: SparkSession) -> None:
    d = dt.date(1956, 4, 9)
    _check(
        spark,
        [
            ("19560409", d),
            ("1956-04-09", d),
            ("09/04/1956", d),
            ("9 Apr 1956", d),
            ("1956/04/09", d),
            ("2024-02-30", None),
            ("0001-01-01", None),
            ("soon", None),
            (None, None),
        ],
        S.parsed_date,
        "date",
    )


def test_iso_country(spark: SparkSession) -> None:
    _check(
        spark,
        [
            ("GB", "GB"),
            ("gbr", "GB"),
            ("United Kingdom", "GB"),
            ("UK", "GB"),
            (" germany ", "DE"),
            ("Deutschland", "DE"),
            ("The Netherlands", "NL"),
            ("netherlands", "NL"),
            ("The State of Palestine", "PS"),  # a name pycountry writes with "the"
            ("state of  palestine", "PS"),
            ("España", "ES"),
            ("Côte d'Ivoire", "CI"),  # a quote inside the map's SQL literal
            ("cote d'ivoire", "CI"),
            ("Atlantis", None),
            (None, None),
        ],
        S.iso_country,
    )


def test_person_records_name_the_formal_folded_given_name(spark: SparkSession) -> None:
    # to_person_records makes the given name formal from its already normalised form: the
    # title, accents and case go once, and the nickname is still looked up after them.
    from cardlake.er import to_person_records

    raw = spark.createDataFrame(
        [
            ("1", " Dr. Bób ", "Smith", None),
            ("2", None, None, "ZOË Ann, Kate"),  # "Surname, Given": given "Kate"
            ("3", "Mrs", "Jones", None),  # nothing left of the given name
        ],
        "id string, given string, family string, full string",
    )
    out = to_person_records(
        raw,
        mapping={
            "record_id": "id",
            "given_name": "given",
            "surname": "family",
            "full_name": "full",
        },
    )
    got = {r["record_id"]: (r["given_name"], r["surname"], r["name_concat"]) for r in out.collect()}
    assert got == {
        "1": ("robert", "smith", "robert smith"),
        "2": ("katherine", "zoe ann", "katherine zoe ann"),
        "3": (None, "jones", None),
    }

"""The deterministic pass: a shared strong identifier links, unless the records contradict it.

A mailbox is one account, but not always one person: a couple may share a family mailbox. Two
records that share it and carry birth dates further apart than typing errors, or plainly
different given names, are not proof of one person; the pair is left to the probabilistic
pass, which weighs the rest.
"""

from __future__ import annotations

import pytest
from pyspark.sql import SparkSession
from pyspark.sql.types import ArrayType, StringType, StructField, StructType

from cardlake.er.conflicts import without_fillers
from cardlake.er.deterministic import deterministic_edges

SCHEMA = StructType(
    [
        StructField("uid", StringType()),
        StructField("source_dataset", StringType()),
        StructField("xref_keys", ArrayType(StringType())),
        StructField("national_id", StringType()),
        StructField("email_canonical", StringType()),
        StructField("dob", StringType()),
        StructField("given_name", StringType()),
        StructField("surname", StringType()),
    ]
)


def _edges(spark: SparkSession, rows: list[tuple[object, ...]]) -> set[tuple[str, str]]:
    records = spark.createDataFrame(rows, SCHEMA)
    return {(r.uid_l, r.uid_r) for r in deterministic_edges(records).collect()}


@pytest.mark.parametrize(
    ("other_dob", "linked"),
    [
        ("1980-04-12", True),  # the same date
        (None, True),  # one record has none
        ("1980-12-04", True),  # day and month swapped
        ("1981-04-12", True),  # one digit off
        ("1908-04-12", True),  # two digits transposed
        ("1983-09-30", False),  # another person: a spouse's birth date
        ("1975-11-02", False),
    ],
)
def test_a_shared_mailbox_links_unless_the_birth_dates_contradict(
    spark: SparkSession, other_dob: str | None, linked: bool
) -> None:
    rows: list[tuple[object, ...]] = [
        ("a|1", "a", [], None, "family@mail.test", "1980-04-12", "anna", "berg"),
        ("b|1", "b", [], None, "family@mail.test", other_dob, "anna", "berg"),
    ]
    assert _edges(spark, rows) == ({("a|1", "b|1")} if linked else set())


def test_a_cross_reference_or_national_id_links_whatever_the_birth_dates(
    spark: SparkSession,
) -> None:
    # Keys another system or the state issued to one person are proof; a birth date that
    # disagrees with them is a data error the probabilistic pass cannot overrule either.
    rows: list[tuple[object, ...]] = [
        ("a|1", "a", ["crm:7"], None, None, "1980-04-12", "anna", "berg"),
        ("b|1", "b", ["crm:7"], None, None, "1955-01-01", "jonas", "berg"),
        ("a|2", "a", [], "N123", None, "1970-01-01", "eva", "lind"),
        ("b|2", "b", [], "N123", None, "1999-09-09", "olof", "lind"),
    ]
    assert _edges(spark, rows) == {("a|1", "b|1"), ("a|2", "b|2")}


def test_the_mailbox_still_links_the_records_that_agree_with_its_first_holder(
    spark: SparkSession,
) -> None:
    # Three records of one family mailbox: the husband twice, his wife once. The husband's
    # records link; the wife's is left to the probabilistic pass.
    rows: list[tuple[object, ...]] = [
        ("a|1", "a", [], None, "family@mail.test", "1980-04-12", "jonas", "berg"),
        ("b|1", "b", [], None, "family@mail.test", "1980-04-12", "jonas", "berg"),
        ("b|2", "b", [], None, "family@mail.test", "1983-09-30", "anna", "berg"),
    ]
    assert _edges(spark, rows) == {("a|1", "b|1")}


@pytest.mark.parametrize(
    ("other_given", "other_surname", "linked"),
    [
        ("jonas", "berg", True),
        ("jnoas", "berg", True),  # a typo
        ("j", "berg", True),  # an initial
        ("jon", "berg", True),  # a short form
        ("jonas peter", "berg", True),  # a second given name
        ("berg", "jonas", True),  # given name and surname swapped
        ("berg", "jnoas", True),  # swapped, with a typo
        ("berg", None, True),  # the surname in the given name's place, no more known
        ("berg", "anna", False),  # his wife's record with her names swapped
        (None, "berg", True),  # no given name to compare
        ("anna", "berg", False),  # his wife, birth date unknown on one side
        ("maria", "berg", False),
    ],
)
def test_a_shared_mailbox_links_unless_the_given_names_are_two_names(
    spark: SparkSession, other_given: str | None, other_surname: str, linked: bool
) -> None:
    rows: list[tuple[object, ...]] = [
        ("a|1", "a", [], None, "family@mail.test", "1980-04-12", "jonas", "berg"),
        ("b|1", "b", [], None, "family@mail.test", None, other_given, other_surname),
    ]
    assert _edges(spark, rows) == ({("a|1", "b|1")} if linked else set())


@pytest.mark.parametrize(("max_records", "linked"), [(4, True), (3, False)])
def test_a_key_held_by_more_records_than_a_person_has_links_nobody(
    spark: SparkSession, max_records: int, linked: bool
) -> None:
    # Four records on one national id and one cross-reference key, a source's fillers: over
    # a limit of three they link nobody; at four, as any shared key, everyone. The mailbox
    # two of them share links those two whatever the limit.
    rows: list[tuple[object, ...]] = [
        (f"{side}|{i}", side, ["crm:0"], "000000000", mail, None, given, "berg")
        for side, i, given, mail in [
            ("a", 1, "anna", "anna@mail.test"),
            ("b", 1, "anna", "anna@mail.test"),
            ("a", 2, "jonas", None),
            ("b", 2, "maria", None),
        ]
    ]
    filler_edges = {("a|1", "a|2"), ("a|1", "b|1"), ("a|1", "b|2")}
    records = without_fillers(spark.createDataFrame(rows, SCHEMA), max_records=max_records)
    found = {(r.uid_l, r.uid_r) for r in deterministic_edges(records).collect()}
    assert found == (filler_edges if linked else {("a|1", "b|1")})
    kept = {r.uid: (r.national_id, tuple(r.xref_keys)) for r in records.collect()}
    assert set(kept.values()) == ({("000000000", ("crm:0",))} if linked else {(None, ())})

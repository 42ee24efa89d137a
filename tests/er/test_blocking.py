"""The probabilistic pass's blocking rules on records whose candidate pairs are known by hand:
a value too many records hold blocks nothing, and the name-led blocks keep only pairs whose
birth dates may be one person's. Each rule set is evaluated in Spark and in DuckDB, the two
engines that score (the rules are SQL both must read alike)."""

from __future__ import annotations

from typing import Any

import duckdb
import pytest
from pyspark.sql import DataFrame, SparkSession

from cardlake.er.conflicts import without_fillers
from cardlake.er.probabilistic import prediction_blocking_rules, with_blocking_keys

COLUMNS = ("uid", "given_name", "surname", "dob", "email_canonical")
PRESENT = {"given_name", "surname", "dob"}


def _records(spark: SparkSession, rows: list[tuple[Any, ...]]) -> DataFrame:
    schema = ", ".join(f"{c} string" for c in COLUMNS)
    return spark.createDataFrame(rows, schema)


def _pairs_spark(records: DataFrame, present: set[str]) -> set[tuple[str, str]]:
    left, right = records.alias("l"), records.alias("r")
    found: set[tuple[str, str]] = set()
    for rule in prediction_blocking_rules(present):
        sql = rule.get_blocking_rule("spark").blocking_rule_sql
        rows = (
            left.crossJoin(right)
            .where(f"({sql}) AND l.uid < r.uid")
            .selectExpr("l.uid AS a", "r.uid AS b")
            .collect()
        )
        found |= {(r.a, r.b) for r in rows}
    return found


def _pairs_duckdb(records: DataFrame, present: set[str]) -> set[tuple[str, str]]:
    con = duckdb.connect()
    con.register("t", records.toArrow())
    found: set[tuple[str, str]] = set()
    for rule in prediction_blocking_rules(present):
        sql = rule.get_blocking_rule("duckdb").blocking_rule_sql
        rows = con.execute(
            f"SELECT l.uid, r.uid FROM t l JOIN t r ON ({sql}) AND l.uid < r.uid"
        ).fetchall()
        found |= {(a, b) for a, b in rows}
    return found


def _both(records: DataFrame, present: set[str]) -> set[tuple[str, str]]:
    spark_pairs, duckdb_pairs = _pairs_spark(records, present), _pairs_duckdb(records, present)
    assert spark_pairs == duckdb_pairs
    return spark_pairs


# Five records on one birth date (a default a source fills in), two on another; names with no
# letter in common, so only the birth-date block can pair them.
SHARED_DATE = [
    ("a1", "anna", "brown", "2005-12-18", None),
    ("a2", "bruno", "costa", "2005-12-18", None),
    ("a3", "chloe", "dunne", "2005-12-18", None),
    ("a4", "dmitri", "evans", "2005-12-18", None),
    ("a5", "elena", "fabbri", "2005-12-18", None),
    ("b1", "fiona", "garcia", "1990-05-05", None),
    ("b2", "gustav", "hansen", "1990-05-05", None),
]


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        pytest.param(
            3, {("b1", "b2")}, id="five records on a date over a limit of three: blocked on no more"
        ),
        pytest.param(
            5,
            {(f"a{i}", f"a{j}") for i in range(1, 6) for j in range(i + 1, 6)} | {("b1", "b2")},
            id="at the limit: still a block",
        ),
    ],
)
def test_a_value_held_by_too_many_records_blocks_nothing(
    spark: SparkSession, limit: int, expected: set[tuple[str, str]]
) -> None:
    [records] = with_blocking_keys([_records(spark, SHARED_DATE)], max_key_block_records=limit)
    records = records.localCheckpoint(eager=True)
    assert _both(records, PRESENT) == expected
    # The flag is per record and names no value: the other key columns are all false.
    flags = {r.uid: (r.dob_too_common, r.email_canonical_too_common) for r in records.collect()}
    assert flags == {uid: (limit < 5 and uid.startswith("a"), False) for uid, *_ in SHARED_DATE}


def test_name_led_blocks_keep_pairs_whose_birth_dates_may_be_one_persons(
    spark: SparkSession,
) -> None:
    # One given name, surnames that share their initial (and, but for sharp and stone, their
    # Soundex): only the name-led blocks can pair them.
    rows = [
        ("p1", "thomas", "smith", "1980-01-02", None),
        ("p2", "thomas", "smyth", "1980-07-09", None),  # p1's year: a typo in the day and month
        ("p3", "thomas", "smithe", "1975-01-02", None),  # p1's day and month: a typo in the year
        ("p4", "thomas", "sharp", "1962-11-30", None),  # no part of any other's date
        ("p5", "thomas", "stone", None, None),  # no date: the names are all there is
    ]
    records = with_blocking_keys([_records(spark, rows)])[0].localCheckpoint(eager=True)
    assert _both(records, PRESENT) == {
        ("p1", "p2"),
        ("p1", "p3"),
        ("p1", "p5"),
        ("p2", "p5"),
        ("p3", "p5"),
        ("p4", "p5"),
    }
    # Without birth dates among the columns held, the name-led blocks pair every one of them.
    [undated] = with_blocking_keys([_records(spark, [(*r[:3], None, None) for r in rows])])
    assert len(_both(undated.localCheckpoint(eager=True), {"given_name", "surname"})) == 10


def test_an_identifier_many_records_hold_is_taken_out_before_blocking(spark: SparkSession) -> None:
    # One mailbox on three records of two files (a "no e-mail" filler), another on two, and one
    # birth date on three. Over an identifier limit of two, counted over both files, the
    # filler is taken out of every record that holds it and blocks nobody; the birth date, no
    # identifier, stays and still blocks (its limit is the key blocks' 1,000).
    first = [
        ("f1", "anna", "brown", "1990-05-05", "none@example.com"),
        ("f2", "bruno", "costa", "1990-05-05", "none@example.com"),
        ("f3", "chloe", "dunne", None, "chloe@mail.test"),
    ]
    second = [
        ("s1", "dmitri", "evans", "1990-05-05", "none@example.com"),
        ("s2", "chloe", "dunne", None, "chloe@mail.test"),
    ]
    union = _records(spark, first).unionByName(_records(spark, second))
    [records] = with_blocking_keys([without_fillers(union, max_records=2)])
    rows = {r.uid: r for r in records.collect()}
    assert {uid: r.email_canonical for uid, r in rows.items()} == {
        "f1": None,
        "f2": None,
        "f3": "chloe@mail.test",
        "s1": None,
        "s2": "chloe@mail.test",
    }
    assert {r.dob for r in rows.values()} == {"1990-05-05", None}
    assert not any(r.dob_too_common or r.email_canonical_too_common for r in rows.values())
    assert _pairs_spark(records, {"email_canonical"}) == {("f3", "s2")}

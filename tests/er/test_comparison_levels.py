"""Which level of the name, birth-date and e-mail comparisons a hand-written pair of records
falls in.

The levels are what the model can tell apart, so they are checked on pairs whose right level
is known: two members of one household (same surname, other given name, birth dates a year
apart) must land in the "different" levels, a person's own variants (typo, initial, short
form, swapped names, a typo in a short surname, swapped day and month, one digit off) in
theirs. Each comparison's SQL is
run as Splink writes it for the dialect, in DuckDB and in Spark.
"""

from __future__ import annotations

from typing import Any

import duckdb
import pytest
from pyspark.sql import SparkSession

from cardlake.er.probabilistic import (
    _birth_date_comparison,
    _email_comparison,
    _jar_loaded,
    _name_comparison,
)

NAME_PAIRS = [
    # (given_l, surname_l, given_r, surname_r, expected level)
    ("anna", "schmidt", "paul", "schmidt", "different given names"),
    ("anna", "schmidt", "anna", "schmidt", "same given name and surname"),
    ("schmidt", "anna", "anna", "schmidt", "given name and surname swapped"),
    ("schmitd", "anna", "anna", "schmidt", "given name and surname swapped, similar"),
    ("anna", "schmidt", "anna", "schmitd", "both names nearly the same"),
    ("ana", "lopez", "aan", "lopez", "both names similar"),
    ("j", "smith", "john", "smith", "given name an initial or short form, surname similar"),
    ("nat", "jones", "natalie", "jones", "given name an initial or short form, surname similar"),
    ("anna", "schmidt", "anna", "meyer", "same given name, other surname"),
    ("robin", "criz", "robun", "cruz", "similar given name, other surname"),
    ("maria", None, "maria", "lopez", "same given name, other surname"),
    ("paul", None, "maria", "lopez", "different given names"),
    (None, "lopez", "maria", "lopez", "null"),
    ("nat", "jones", "natalie", "brown", "different given names"),
    # One given name of two words, the second dropped and the first mistyped.
    (
        "alphonse charles",
        "thibault",
        "alphpnse",
        "thibault",
        "first given names similar, surname similar",
    ),
    ("anna maria", "schmidt", "paula", "schmidt", "different given names"),
]
DOB_PAIRS = [
    ("1985-03-07", "1985-03-07", "same date"),
    ("1985-03-07", "1985-07-03", "day and month swapped"),
    ("1985-03-07", "1986-03-07", "one digit off"),
    ("1958-03-07", "1985-03-07", "one digit off"),  # two digits transposed
    ("1985-03-07", "1986-04-07", "different dates"),  # a sibling born a year later
    ("1985-03-07", "1987-11-23", "different dates"),
    (None, "1985-03-07", "null"),
]

FAMILY = "berg.family@mail.test"
EMAIL_PAIRS = [
    # (given_l, surname_l, mailbox_l, given_r, surname_r, mailbox_r, expected level); "null"
    # is a neutral level: it counts neither way.
    ("anna", "berg", FAMILY, "jonas", "berg", FAMILY, "null"),  # a couple's one mailbox
    ("anna", "berg", FAMILY, "anna", "berg", FAMILY, "same address"),
    ("anna", "berg", FAMILY, "anan", "berg", FAMILY, "same address"),  # a typo
    ("anna", "berg", FAMILY, "a", "berg", FAMILY, "same address"),  # an initial
    ("anna", "berg", FAMILY, "berg", "anna", FAMILY, "same address"),  # names swapped
    ("anna", "berg", FAMILY, "berg", "jonas", FAMILY, "null"),  # her husband's, swapped
    (None, "berg", FAMILY, "jonas", "berg", FAMILY, "same address"),  # nothing to tell apart
    (
        "anna",
        "berg",
        "anna.berg@mail.test",
        "anna",
        "berg",
        "anna.berg@other.test",
        "same user name, other domain",
    ),
    (
        "anna",
        "berg",
        "anna.berg@mail.test",
        "jonas",
        "berg",
        "jonas.berg@mail.test",
        "different addresses",
    ),
    ("anna", "berg", None, "anna", "berg", FAMILY, "null"),
]


def _case_sql(comparison: Any, dialect: str) -> str:
    """The comparison's levels as one CASE expression returning the level's label."""
    whens = []
    for level in comparison.create_comparison_dict(dialect)["comparison_levels"]:
        label = "null" if level.get("is_null_level") else level["label_for_charts"]
        if level["sql_condition"] == "ELSE":
            whens.append(f"ELSE '{label}'")
        else:
            whens.append(f"WHEN {level['sql_condition']} THEN '{label}'")
    return "CASE " + " ".join(whens) + " END"


def _name_rows() -> list[dict[str, str | None]]:
    def concat(given: str | None, surname: str | None) -> str | None:
        return f"{given} {surname}" if given and surname else None

    return [
        {
            "given_name_l": gl,
            "surname_l": sl,
            "name_concat_l": concat(gl, sl),
            "given_name_r": gr,
            "surname_r": sr,
            "name_concat_r": concat(gr, sr),
        }
        for gl, sl, gr, sr, _ in NAME_PAIRS
    ]


def _email_rows() -> list[dict[str, str | None]]:
    columns = ("given_name", "surname", "email_canonical")
    return [
        {
            **{f"{c}_l": v for c, v in zip(columns, pair[:3], strict=True)},
            **{f"{c}_r": v for c, v in zip(columns, pair[3:6], strict=True)},
        }
        for pair in EMAIL_PAIRS
    ]


def _dob_rows() -> list[dict[str, str | None]]:
    return [{"dob_l": left, "dob_r": right} for left, right, _ in DOB_PAIRS]


def _levels_in_duckdb(rows: list[dict[str, str | None]], case_sql: str) -> list[str]:
    import pandas as pd

    frame = pd.DataFrame(rows, dtype=object)
    con = duckdb.connect()
    con.register("pairs", frame)
    return [r[0] for r in con.execute(f"SELECT {case_sql} FROM pairs").fetchall()]


def _levels_in_spark(
    spark: SparkSession, rows: list[dict[str, str | None]], case_sql: str
) -> list[str]:
    columns = list(rows[0])
    df = spark.createDataFrame(
        [tuple(r[c] for c in columns) for r in rows], ", ".join(f"{c} string" for c in columns)
    )
    return [r[0] for r in df.selectExpr(case_sql).collect()]


@pytest.mark.parametrize("fuzzy", [True, False], ids=["jaro-winkler", "levenshtein"])
def test_name_levels_in_duckdb(fuzzy: bool) -> None:
    got = _levels_in_duckdb(_name_rows(), _case_sql(_name_comparison(fuzzy=fuzzy), "duckdb"))
    expected = [p[-1] for p in NAME_PAIRS]
    if not fuzzy:  # Levenshtein distances: a transposition is two edits; criz/cruz is one
        expected[4] = "both names similar"
        expected[9] = "both names nearly the same"
    assert got == expected


def test_birth_date_levels_in_duckdb() -> None:
    got = _levels_in_duckdb(_dob_rows(), _case_sql(_birth_date_comparison(fuzzy=True), "duckdb"))
    assert got == [p[-1] for p in DOB_PAIRS]


def test_name_and_birth_date_levels_in_spark(spark: SparkSession) -> None:
    assert _jar_loaded(spark)  # the session profiles carry Splink's jar (tests/er/conftest.py)
    names = _levels_in_spark(spark, _name_rows(), _case_sql(_name_comparison(fuzzy=True), "spark"))
    dobs = _levels_in_spark(
        spark, _dob_rows(), _case_sql(_birth_date_comparison(fuzzy=True), "spark")
    )
    assert names == [p[-1] for p in NAME_PAIRS]
    assert dobs == [p[-1] for p in DOB_PAIRS]


@pytest.mark.parametrize("dialect", ["duckdb", "spark"])
def test_a_shared_mailbox_of_two_given_names_is_neutral(spark: SparkSession, dialect: str) -> None:
    def levels(present: set[str], rows: list[dict[str, str | None]]) -> list[str]:
        case_sql = _case_sql(_email_comparison(present, fuzzy=True), dialect)
        if dialect == "duckdb":
            return _levels_in_duckdb(rows, case_sql)
        return _levels_in_spark(spark, rows, case_sql)

    assert levels({"given_name", "surname"}, _email_rows()) == [p[-1] for p in EMAIL_PAIRS]
    # Without names to tell two people apart, a shared mailbox is the same address.
    couple = _email_rows()[:1]
    assert levels({"email_canonical"}, couple) == ["same address"]
    # Where birth dates are held, two given names on one birth date are a nickname (Bob for
    # Robert): the mailbox counts. Two dates, or one missing, leave it neutral.
    dated = [
        {**couple[0], "dob_l": "1980-04-12", "dob_r": right}
        for right in ("1980-04-12", "1983-09-30", None)
    ]
    assert levels({"given_name", "surname", "dob"}, dated) == ["same address", "null", "null"]
